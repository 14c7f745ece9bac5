"""Figures of the free-recall analyses, after psifr's (``fr.plot_spc``, ``fr.plot_lag_crp``, ...).

psifr draws with seaborn; these use matplotlib only (imported on first use, so the backend is
the caller's). Each takes the table an analysis returns, draws the mean over subjects (a line,
with a shaded 95% interval of the mean, ±1.96 SEM, when ``band``), labels the axes as psifr
does, and returns the Axes (a new figure's when ``ax`` is None).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def _axes(ax: Any) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots()[1]


def _need(table: Any, columns: Sequence[str], caller: str) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{caller} takes the DataFrame an analysis returns, got {type(table).__name__}")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{caller} needs the columns {list(columns)}; the table lacks {missing}")
    return table


def _mean_line(ax: Any, table: pd.DataFrame, x: str, y: str, band: bool, **style: Any) -> None:
    """The mean of ``y`` over subjects at each ``x`` (NaN ignored), with its 95% band."""
    grouped = table.groupby(x)[y]
    mean, sem = grouped.mean(), grouped.sem()
    line, = ax.plot(mean.index.to_numpy(float), mean.to_numpy(float), marker="o", markersize=3, **style)
    if band:
        low, high = (mean - 1.96 * sem).to_numpy(float), (mean + 1.96 * sem).to_numpy(float)
        ax.fill_between(mean.index.to_numpy(float), low, high, color=line.get_color(), alpha=0.2, linewidth=0)


def plot_spc(table: pd.DataFrame, ax: Any = None, band: bool = True) -> Any:
    """Serial position curve from :func:`spc` (``recall``) or a ``prob`` table such as
    :func:`pnr` filtered to one output (``input`` on x, probability 0..1 on y)."""
    y = "recall" if isinstance(table, pd.DataFrame) and "recall" in table.columns else "prob"
    _need(table, ["subject", "input", y], "plot_spc")
    ax = _axes(ax)
    _mean_line(ax, table, "input", y, band)
    ax.set(xlabel="Serial position", ylabel="Recall probability", ylim=(0, 1))
    return ax


def plot_lag_crp(table: pd.DataFrame, max_lag: int = 5, ax: Any = None, band: bool = True,
                 previous: Sequence[int] = (-1, 1)) -> Any:
    """Lag-CRP from :func:`lag_crp` (lags −max_lag..max_lag, drawn as two lines with a gap at
    lag 0, as psifr's ``split=True``), or from :func:`lag_crp_compound` (one such pair of lines
    per lag of the transition before, ``previous``)."""
    if not isinstance(max_lag, (int, np.integer)) or isinstance(max_lag, bool) or max_lag < 1:
        raise ValueError(f"max_lag must be a positive integer, got {max_lag!r}")
    compound = isinstance(table, pd.DataFrame) and {"previous", "current"} <= set(table.columns)
    lag = "current" if compound else "lag"
    _need(table, ["subject", lag, "prob"], "plot_lag_crp")
    ax = _axes(ax)
    groups = [(f"previous lag {p:+d}", table[table["previous"] == p]) for p in previous] if compound else [(None, table)]
    for label, part in groups:
        color = None
        for side in (part[(part[lag] >= -max_lag) & (part[lag] < 0)], part[(part[lag] > 0) & (part[lag] <= max_lag)]):
            _mean_line(ax, side, lag, "prob", band, color=color, label=label if color is None else None)
            color = ax.lines[-1].get_color()
    if compound:
        ax.legend(frameon=False)
    ax.set(xlabel="Lag", ylabel="CRP", ylim=(0, 1), xlim=(-max_lag - 0.5, max_lag + 0.5))
    return ax


def plot_input_crp(table: pd.DataFrame, previous: Sequence[int] | None = None, ax: Any = None,
                   band: bool = False) -> Any:
    """CRP by study position from :func:`input_crp`: the current recall's serial position on x,
    one line per previous recall's position (``previous``; default all), as psifr's figure."""
    _need(table, ["subject", "previous", "current", "prob"], "plot_input_crp")
    ax = _axes(ax)
    positions = np.unique(table["previous"]) if previous is None else list(previous)
    for p in positions:
        _mean_line(ax, table[table["previous"] == p], "current", "prob", band, label=f"from {p}")
    if len(positions) <= 8:
        ax.legend(frameon=False)
    ax.set(xlabel="Serial position", ylabel="CRP", ylim=(0, 1))
    return ax


def plot_distance_crp(table: pd.DataFrame, min_samples: int | None = None, ax: Any = None, band: bool = True) -> Any:
    """CRP by distance bin from :func:`distance_crp` (bin ``center`` on x). As psifr, with
    ``min_samples`` only bins possible at least that often for every subject are drawn."""
    _need(table, ["subject", "center", "prob", "possible"], "plot_distance_crp")
    if min_samples is not None:
        fewest = table.groupby("center")["possible"].min()
        table = table[table["center"].isin(fewest.index[fewest >= min_samples])]
    ax = _axes(ax)
    _mean_line(ax, table, "center", "prob", band)
    ax.set(xlabel="Distance", ylabel="CRP", ylim=(0, 1))
    return ax


def plot_subject_scores(table: pd.DataFrame, columns: Sequence[str] | None = None, ax: Any = None) -> Any:
    """One score per subject (:func:`lag_rank`, :func:`distance_rank`, :func:`category_crp`,
    :func:`category_clustering`): each subject as a point and the mean with a 95% interval
    (±1.96 SEM), a column per x position (psifr's ``plot_swarm_error``)."""
    if columns is None and isinstance(table, pd.DataFrame):
        columns = [c for c in ("rank", "prob", "lbc", "arc") if c in table.columns]
    _need(table, ["subject", *(columns or ["rank"])], "plot_subject_scores")
    ax = _axes(ax)
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(table))
    for x, column in enumerate(columns):
        values = table[column].to_numpy(float)
        ax.scatter(x + jitter, values, s=12, alpha=0.6, color="0.5", zorder=1)
        mean, sem = np.nanmean(values), np.nanstd(values, ddof=1) / np.sqrt(np.isfinite(values).sum())
        ax.errorbar(x, mean, yerr=1.96 * sem, color="k", marker="o", capsize=6, zorder=2)
    ax.set_xticks(range(len(columns)), list(columns))
    ax.set(xlim=(-0.6, len(columns) - 0.4), ylabel=columns[0] if len(columns) == 1 else "Score")
    return ax


def plot_pli_list_lag(table: pd.DataFrame, y: str = "prob", ax: Any = None, band: bool = True) -> Any:
    """Prior-list intrusions by list lag from :func:`pli_list_lag` (``prob``: the share of a
    subject's intrusions; or ``per_list`` / ``count``)."""
    _need(table, ["subject", "list_lag", y], "plot_pli_list_lag")
    ax = _axes(ax)
    _mean_line(ax, table, "list_lag", y, band)
    labels = {"prob": "PLI probability", "per_list": "PLIs per list", "count": "PLI count"}
    ax.set(xlabel="List lag", ylabel=labels.get(y, y))
    ax.set_xticks(np.unique(table["list_lag"]))
    return ax

"""Free-recall data: a validated, padded-array dataset and its converters.

One row per list (trial). Study positions and recall positions are 1-indexed, 0 is padding,
and a negative recall position marks an intrusion (an item that was not on the list).
Repeats (a position recalled a second time) are kept and flagged, never dropped.

Formats:

- psifr's long "event table" (one row per study or recall event: ``subject``, ``list``,
  ``trial_type``, ``position``, ``item``), via :func:`from_events` / :func:`to_events`;
- CSV files of that table, via :func:`read_csv` / :func:`write_csv`;
- HDF5 in the layout jaxcmr and the Kahana-lab toolboxes use (a ``/data`` group holding
  ``subject``, ``listLength``, ``pres_itemnos`` and ``recalls``, each stored transposed),
  via :func:`read_hdf5` / :func:`write_hdf5`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from superpose.runner.files import write_text

INTRUSION = -1
"""Recall position written for an intrusion when none more specific is known."""

_HDF5_REQUIRED = ("subject", "listLength", "pres_itemnos", "recalls")


def _int_array(name: str, value: Any, ndim: int) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"{name} must hold integers, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} must be finite; it holds NaN or inf")
        if np.any(array != np.round(array)):
            raise ValueError(f"{name} must hold whole numbers, found a fractional entry")
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {array.shape}")
    return array.astype(np.int64)  # always a copy: the dataset never shares memory with its inputs


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class RecallDataset:
    """Free-recall lists as padded integer arrays (L lists, N = longest list, R = most recalls).

    Attributes:
        subject: ``(L,)`` subject id of each list.
        list_length: ``(L,)`` number of studied items, 1..N.
        presented: ``(L, N)`` item numbers (>= 1) in study order, 0 after ``list_length``.
        recalls: ``(L, R)`` study positions of the recalls in output order (1..list_length),
            a negative number for an intrusion, 0 as trailing padding.
        list_number: ``(L,)`` the list's number within its subject (default 1, 2, ... per subject).
        recalled_items: ``(L, R)`` item numbers of the recalls (0 = unknown or padding). Defaults
            to the presented item for correct recalls and 0 for intrusions.
        words: optional item names, ``words[k - 1]`` is the name of item number ``k``.
        conditions: optional per-list columns, each ``(L,)`` (for example ``list_type``).
        item_attributes: optional per-item columns (for example ``category``), each a 1-D array
            indexed by item number − 1 and covering every item number of the dataset; a missing
            value is NaN (numeric columns) or None (other columns).

    The dataset is immutable: its arrays are read-only copies of the inputs and ``conditions``
    and ``item_attributes`` are read-only mappings, so a cached dataset (:func:`superpose.recall.load_sample`) cannot be
    changed behind its validation. Copy an array (``ds.recalls.copy()``) to edit it, and build a
    new dataset from the copy.

    Raises:
        ValueError: naming the offending row (index, subject, list) when a recall points outside
            its list, padding is not trailing, an item number is missing, or shapes disagree.
    """

    subject: np.ndarray
    list_length: np.ndarray
    presented: np.ndarray
    recalls: np.ndarray
    list_number: np.ndarray | None = None
    recalled_items: np.ndarray | None = None
    words: tuple[str, ...] | None = None
    conditions: Mapping[str, np.ndarray] = field(default_factory=dict)
    item_attributes: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        subject = _int_array("subject", self.subject, 1)
        list_length = _int_array("list_length", self.list_length, 1)
        presented = _int_array("presented", self.presented, 2)
        recalls = _int_array("recalls", self.recalls, 2)
        n_lists = subject.shape[0]
        if n_lists == 0:
            raise ValueError("a RecallDataset needs at least one list, got 0")
        for name, array in (("list_length", list_length), ("presented", presented), ("recalls", recalls)):
            if array.shape[0] != n_lists:
                raise ValueError(f"{name} has {array.shape[0]} rows but subject has {n_lists}; one row per list")
        if self.list_number is None:
            list_number = np.zeros(n_lists, np.int64)
            for s in np.unique(subject):
                rows = subject == s
                list_number[rows] = np.arange(1, rows.sum() + 1)
        else:
            list_number = _int_array("list_number", self.list_number, 1)
            if list_number.shape != (n_lists,):
                raise ValueError(f"list_number must have shape ({n_lists},), got {list_number.shape}")
        object.__setattr__(self, "subject", subject)
        object.__setattr__(self, "list_length", list_length)
        object.__setattr__(self, "presented", presented)
        object.__setattr__(self, "recalls", recalls)
        object.__setattr__(self, "list_number", list_number)

        def where(row: int) -> str:
            return f"row {row} (subject {subject[row]}, list {list_number[row]})"

        width = presented.shape[1]
        bad = np.flatnonzero((list_length < 1) | (list_length > width))
        if bad.size:
            raise ValueError(f"{where(bad[0])}: list_length {list_length[bad[0]]} must be in 1..{width} "
                             "(the width of presented)")
        slots = np.arange(width)[None, :]
        in_list = slots < list_length[:, None]
        bad = np.flatnonzero(np.any(in_list & (presented < 1), axis=1))
        if bad.size:
            raise ValueError(f"{where(bad[0])}: presented item numbers must be >= 1 within the list, "
                             f"got {presented[bad[0], :list_length[bad[0]]].tolist()}")
        bad = np.flatnonzero(np.any(~in_list & (presented != 0), axis=1))
        if bad.size:
            raise ValueError(f"{where(bad[0])}: presented must be 0 after list_length {list_length[bad[0]]}")
        bad = np.flatnonzero(np.any(recalls > list_length[:, None], axis=1))
        if bad.size:
            r = bad[0]
            raise ValueError(f"{where(r)}: recall position {recalls[r].max()} points outside a list of "
                             f"{list_length[r]} items (positions are 1..list_length, negative = intrusion)")
        filled = recalls != 0
        bad = np.flatnonzero(np.any(~filled[:, :-1] & filled[:, 1:], axis=1)) if recalls.shape[1] > 1 else []
        if len(bad):
            raise ValueError(f"{where(bad[0])}: recalls must be padded with trailing zeros only, "
                             f"got {recalls[bad[0]].tolist()}")

        correct_items = np.where(recalls > 0, np.take_along_axis(presented, np.maximum(recalls - 1, 0), 1), 0)
        if self.recalled_items is None:
            recalled_items = correct_items
        else:
            recalled_items = _int_array("recalled_items", self.recalled_items, 2)
            if recalled_items.shape != recalls.shape:
                raise ValueError(f"recalled_items must have the shape of recalls {recalls.shape}, "
                                 f"got {recalled_items.shape}")
            bad = np.flatnonzero(np.any((recalls > 0) & (recalled_items != correct_items), axis=1))
            if bad.size:
                raise ValueError(f"{where(bad[0])}: recalled_items disagree with the presented items at "
                                 "the recalled positions")
            bad = np.flatnonzero(np.any((recalls == 0) & (recalled_items != 0), axis=1))
            if bad.size:
                raise ValueError(f"{where(bad[0])}: recalled_items must be 0 where recalls is padding")
        object.__setattr__(self, "recalled_items", recalled_items)

        if self.words is not None:
            words = tuple(str(w) for w in self.words)
            top = max(int(presented.max()), int(recalled_items.max()))
            if len(words) < top:
                raise ValueError(f"words has {len(words)} names but item number {top} occurs")
            object.__setattr__(self, "words", words)
        conditions = {}
        for name, column in dict(self.conditions).items():
            column = np.asarray(column)
            if column.shape != (n_lists,):
                raise ValueError(f"condition {name!r} must have shape ({n_lists},), got {column.shape}")
            column = column.astype(str) if column.dtype == object else column.copy()
            conditions[str(name)] = _read_only(column)
        object.__setattr__(self, "conditions", types.MappingProxyType(conditions))
        top = max(int(presented.max()), int(recalled_items.max()))
        object.__setattr__(self, "item_attributes", types.MappingProxyType(
            _item_attributes(self.item_attributes, top, set(conditions))))
        for name in ("subject", "list_length", "presented", "recalls", "list_number", "recalled_items"):
            _read_only(getattr(self, name))

    # --- shape and flags -------------------------------------------------------------------------

    @property
    def n_lists(self) -> int:
        return int(self.subject.shape[0])

    @property
    def subjects(self) -> np.ndarray:
        """Sorted unique subject ids."""
        return np.unique(self.subject)

    @property
    def intrusions(self) -> np.ndarray:
        """``(L, R)`` True where a recall is an intrusion."""
        return self.recalls < 0

    @property
    def repeats(self) -> np.ndarray:
        """``(L, R)`` True where a study position was already recalled earlier in the list."""
        rec = self.recalls
        earlier = (rec[:, :, None] == rec[:, None, :]) & np.tril(np.ones((rec.shape[1],) * 2, bool), -1)[None]
        return (rec > 0) & earlier.any(axis=2)

    @property
    def correct(self) -> np.ndarray:
        """``(L, R)`` True for a first recall of a studied item (neither intrusion nor repeat)."""
        return (self.recalls > 0) & ~self.repeats

    def clean_recalls(self) -> np.ndarray:
        """``(L, R')`` the correct recalls only, in output order, left-aligned and 0-padded."""
        keep = self.correct
        width = max(1, int(keep.sum(1).max()))
        out = np.zeros((self.n_lists, width), np.int64)
        for row in range(self.n_lists):
            values = self.recalls[row][keep[row]]
            out[row, : values.size] = values
        return out

    def select(self, rows: np.ndarray | Sequence[int] | None = None, *, subjects: Sequence[int] | None = None) -> RecallDataset:
        """A dataset of some rows (a boolean mask or indices) or of some subjects."""
        if subjects is not None:
            wanted = np.asarray(list(subjects))
            missing = np.setdiff1d(wanted, self.subjects)
            if missing.size:
                raise ValueError(f"subjects {missing.tolist()} are not in the dataset; it has "
                                 f"{self.subjects.tolist()}")
            mask = np.isin(self.subject, wanted)
            rows = mask if rows is None else mask & _row_mask(rows, self.n_lists)
        index = np.flatnonzero(_row_mask(rows, self.n_lists)) if rows is not None else np.arange(self.n_lists)
        if index.size == 0:
            raise ValueError("the selection holds no lists")
        n = int(self.list_length[index].max())
        r = max(1, int((self.recalls[index] != 0).sum(1).max()))
        return RecallDataset(
            subject=self.subject[index], list_length=self.list_length[index],
            presented=self.presented[index, :n], recalls=self.recalls[index, :r],
            list_number=self.list_number[index], recalled_items=self.recalled_items[index, :r],
            words=self.words, conditions={k: v[index] for k, v in self.conditions.items()},
            item_attributes=self.item_attributes,
        )

    def summary(self) -> dict[str, Any]:
        """Counts: lists, subjects, list lengths, recalls, intrusions and repeats."""
        return {
            "lists": self.n_lists, "subjects": int(self.subjects.size),
            "list_lengths": sorted(set(self.list_length.tolist())),
            "correct_recalls": int(self.correct.sum()), "intrusions": int(self.intrusions.sum()),
            "repeats": int(self.repeats.sum()),
        }

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the data a likelihood reads: subject ids, list numbers and lengths and the
        padded ``presented``, ``recalls`` and ``recalled_items`` arrays, with their shapes. Any changed
        entry changes it; ``words``, ``conditions`` and ``item_attributes`` do not enter."""
        digest = hashlib.sha256()
        for name in ("subject", "list_number", "list_length", "presented", "recalls", "recalled_items"):
            array = np.ascontiguousarray(getattr(self, name), np.int64)
            digest.update(f"{name}{array.shape}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    def __repr__(self) -> str:
        s = self.summary()
        return (f"RecallDataset({s['lists']} lists, {s['subjects']} subjects, list lengths {s['list_lengths']}, "
                f"{s['correct_recalls']} correct recalls, {s['intrusions']} intrusions, {s['repeats']} repeats)")


def _item_attributes(value: Any, top: int, conditions: set[str]) -> dict[str, np.ndarray]:
    """Validated read-only copies of per-item columns (see :class:`RecallDataset`)."""
    accepted = "a mapping from a name to a 1-D array with one value per item number (index = item number - 1)"
    if not isinstance(value, Mapping):
        raise TypeError(f"item_attributes must be {accepted}, got {type(value).__name__}")
    out = {}
    for name, column in value.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"item_attributes names must be non-empty strings, got {name!r}")
        if name in (*_EVENT_COLUMNS, "item_number") or name in conditions:
            raise ValueError(f"item attribute {name!r} clashes with an event column or a condition")
        if isinstance(column, (str, bytes, Mapping)) or not hasattr(column, "__len__"):
            raise TypeError(f"item attribute {name!r} must be {accepted}, got {type(column).__name__}")
        column = np.array(column)  # a copy: the dataset never shares memory with its inputs
        if column.ndim != 1:
            raise ValueError(f"item attribute {name!r} must be 1-D ({accepted}), got shape {column.shape}")
        if column.shape[0] < top:
            raise ValueError(f"item attribute {name!r} has {column.shape[0]} values but item number {top} occurs; "
                             f"it must be {accepted}")
        if column.dtype == object:
            column[pd.isna(column)] = None  # one spelling of "missing" for non-numeric columns
        out[name] = _read_only(column)
    return out


def _row_mask(rows: Any, n: int) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.dtype == bool:
        if rows.shape != (n,):
            raise ValueError(f"a boolean row mask must have shape ({n},), got {rows.shape}")
        return rows
    mask = np.zeros(n, bool)
    if rows.size and (rows.min() < -n or rows.max() >= n):
        raise ValueError(f"row indices must be in 0..{n - 1}")
    mask[rows] = True
    return mask


# --- psifr event tables ----------------------------------------------------------------------------

_EVENT_COLUMNS = ("subject", "list", "trial_type", "position", "item")


def from_events(events: pd.DataFrame, conditions: Sequence[str] = (),
                item_attributes: Sequence[str] = ()) -> RecallDataset:
    """Builds a dataset from psifr's long event table.

    Args:
        events: one row per event with columns ``subject``, ``list``, ``trial_type`` (``"study"``
            or ``"recall"``), ``position`` (study position, or output position for recalls) and
            ``item``. An ``item_number`` column, when present, gives the item numbers; otherwise
            items are numbered by their sorted names.
        conditions: per-list columns to keep (each must be constant within a list).
        item_attributes: per-item columns to keep (for example ``("category",)``), read from
            every study and recall event of an item; each item must have one value (missing
            values are ignored; an item with none gets NaN or None).

    Returns:
        A :class:`RecallDataset`; a recalled item not studied on its list is an intrusion.
    """
    if not isinstance(events, pd.DataFrame):
        raise TypeError(f"events must be a pandas DataFrame, got {type(events).__name__}")
    missing = [c for c in _EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"events lack the columns {missing}; psifr's format needs {list(_EVENT_COLUMNS)}")
    kinds = set(events["trial_type"].unique()) - {"study", "recall"}
    if kinds:
        raise ValueError(f"trial_type must be 'study' or 'recall', found {sorted(map(str, kinds))}")
    for column in ("subject", "list", "position"):
        if events[column].isna().any():
            raise ValueError(f"column {column!r} has missing values (row {int(events[column].isna().idxmax())})")
    events = events.sort_values(["subject", "list", "trial_type", "position"], kind="stable").reset_index(drop=True)
    names = events["item"].astype(str)
    if "item_number" in events.columns:
        # The data's own numbers where known (>= 0); an unknown number (NaN or negative, as
        # psifr writes for intrusions from outside the pool) gets a new number after the pool.
        raw = pd.to_numeric(events["item_number"], errors="coerce").to_numpy(float)
        known = np.isfinite(raw) & (raw >= 0)
        if np.any(raw[known] != np.round(raw[known])):
            raise ValueError("item_number must hold whole numbers")
        offset = 1 if known.any() and raw[known].min() == 0 else 0
        numbers = np.zeros(raw.size, np.int64)
        numbers[known] = raw[known].astype(np.int64) + offset
        lookup: dict[int, str] = {}
        for number, name in zip(numbers[known], names.to_numpy()[known]):
            if lookup.setdefault(int(number), name) != name:
                raise ValueError(f"item_number {number} names two items: {lookup[int(number)]!r} and {name!r}")
        top = int(numbers.max()) if known.any() else 0
        extra = {w: top + i + 1 for i, w in enumerate(sorted(set(names.to_numpy()[~known]) - set(lookup.values())))}
        by_name = {w: k for k, w in lookup.items()}
        numbers[~known] = [by_name.get(w, extra.get(w, 0)) for w in names.to_numpy()[~known]]
        lookup.update({k: w for w, k in extra.items()})
        words = tuple(lookup.get(k, "") for k in range(1, int(numbers.max()) + 1))
    else:
        vocabulary = sorted(names.unique())
        index = {w: i + 1 for i, w in enumerate(vocabulary)}
        numbers = names.map(index).to_numpy(np.int64)
        words = tuple(vocabulary)
    events = events.assign(_number=numbers)
    events["_row"] = events.groupby(["subject", "list"], sort=False).ngroup()
    keys = events.drop_duplicates("_row").sort_values("_row")[["subject", "list"]].to_numpy()
    n_lists = len(keys)

    def where(row: int) -> str:
        return f"subject {keys[row][0]}, list {keys[row][1]}"

    study = events[events["trial_type"] == "study"]
    lengths = np.bincount(study["_row"].to_numpy(), minlength=n_lists)
    if np.any(lengths == 0):
        raise ValueError(f"{where(int(np.argmin(lengths)))}: no study events")
    positions = study["position"].to_numpy()
    if np.any(positions != np.round(positions)) or np.any(positions < 1) or np.any(positions > lengths[study["_row"]]):
        bad = int(study["_row"].to_numpy()[np.argmax((positions < 1) | (positions > lengths[study["_row"]]))])
        raise ValueError(f"{where(bad)}: study positions must be 1..n once each")
    presented = np.zeros((n_lists, int(lengths.max())), np.int64)
    rows, cols = study["_row"].to_numpy(), positions.astype(np.int64) - 1
    filled = np.zeros_like(presented)
    np.add.at(filled, (rows, cols), 1)
    if np.any(filled[np.arange(presented.shape[1])[None, :] < lengths[:, None]] != 1):
        bad = int(np.flatnonzero((filled != 1).any(1) & (lengths > 0))[0])
        raise ValueError(f"{where(bad)}: study positions must be 1..n once each")
    presented[rows, cols] = study["_number"].to_numpy()
    twice = study.duplicated(["_row", "_number"]).to_numpy()
    if twice.any():
        raise ValueError(f"{where(int(rows[np.argmax(twice)]))}: an item is studied twice")

    recall = events[events["trial_type"] == "recall"]
    position_of = pd.Series(cols + 1, index=pd.MultiIndex.from_arrays([rows, study["_number"].to_numpy()]))
    recall_rows = recall["_row"].to_numpy()
    lookup = pd.MultiIndex.from_arrays([recall_rows, recall["_number"].to_numpy()])
    recall_positions = position_of.reindex(lookup).to_numpy()
    recall_positions = np.where(np.isnan(recall_positions), INTRUSION, recall_positions).astype(np.int64)
    outputs = recall.groupby("_row", sort=False).cumcount().to_numpy()
    width = max(1, int(outputs.max()) + 1) if outputs.size else 1
    recalls = np.zeros((n_lists, width), np.int64)
    items = np.zeros((n_lists, width), np.int64)
    recalls[recall_rows, outputs] = recall_positions
    items[recall_rows, outputs] = recall["_number"].to_numpy()
    cond_values = {}
    for c in conditions:
        if c not in events.columns:
            raise ValueError(f"condition column {c!r} is not in the events; columns: {list(events.columns)}")
        varying = events.groupby("_row")[c].nunique()
        if (varying > 1).any():
            raise ValueError(f"condition {c!r} varies within {where(int(varying.idxmax()))}")
        first = events.dropna(subset=[c]).drop_duplicates("_row").set_index("_row")[c]
        cond_values[c] = first.reindex(range(n_lists)).fillna("").to_numpy()
    if isinstance(item_attributes, str):
        raise TypeError(f"item_attributes must be a sequence of column names, got the string {item_attributes!r}")
    attributes = {a: _item_column(events, a, words) for a in item_attributes}
    return RecallDataset(
        subject=keys[:, 0].astype(np.int64), list_length=lengths, presented=presented, recalls=recalls,
        list_number=keys[:, 1].astype(np.int64), recalled_items=items, words=words,
        conditions={c: np.asarray(v) for c, v in cond_values.items()}, item_attributes=attributes,
    )


def _item_column(events: pd.DataFrame, name: str, words: tuple[str, ...]) -> np.ndarray:
    """One value per item number (index = number − 1) from the events' ``name`` column."""
    if name not in events.columns:
        raise ValueError(f"item attribute column {name!r} is not in the events; columns: {list(events.columns)}")
    known = events.dropna(subset=[name])
    known = known[known["_number"] >= 1]
    counts = known.groupby("_number")[name].nunique()
    if (counts > 1).any():
        number = int(counts.idxmax())
        values = sorted(map(str, known.loc[known["_number"] == number, name].unique()))
        raise ValueError(f"item attribute {name!r} must have one value per item; item {words[number - 1]!r} "
                         f"(number {number}) has {values}")
    first = known.drop_duplicates("_number")
    numeric = pd.api.types.is_numeric_dtype(events[name]) and not pd.api.types.is_bool_dtype(events[name])
    column = np.full(len(words), np.nan) if numeric else np.full(len(words), None, dtype=object)
    column[first["_number"].to_numpy() - 1] = first[name].to_numpy()
    return column


def to_events(dataset: RecallDataset) -> pd.DataFrame:
    """The dataset as psifr's long event table (study rows, then recall rows, per list).

    Columns: ``subject``, ``list``, ``trial_type``, ``position``, ``item`` (the word when
    ``words`` is set, else the item number as text), ``item_number``, any conditions and any
    item attributes (the value of each event's item; missing for an unknown item).
    """
    rows: list[dict[str, Any]] = []

    def name(number: int) -> str:
        if dataset.words is not None and number >= 1:
            return dataset.words[number - 1]
        return str(number)

    for row in range(dataset.n_lists):
        base = {"subject": int(dataset.subject[row]), "list": int(dataset.list_number[row])}
        extra = {c: v[row].item() if hasattr(v[row], "item") else v[row] for c, v in dataset.conditions.items()}
        for p in range(int(dataset.list_length[row])):
            number = int(dataset.presented[row, p])
            rows.append({**base, "trial_type": "study", "position": p + 1, "item": name(number),
                         "item_number": number, **extra})
        for o in range(dataset.recalls.shape[1]):
            if dataset.recalls[row, o] == 0:
                break
            number = int(dataset.recalled_items[row, o])
            rows.append({**base, "trial_type": "recall", "position": o + 1,
                         "item": name(number) if number else f"intrusion-{row}-{o + 1}",
                         "item_number": number, **extra})
    table = pd.DataFrame(rows)
    numbers = table["item_number"].to_numpy()
    for attribute, values in dataset.item_attributes.items():
        table[attribute] = pd.Series(values).reindex(numbers - 1).to_numpy()  # number 0 (unknown): missing
    return table


def read_csv(path: str | os.PathLike[str], conditions: Sequence[str] = (),
             item_attributes: Sequence[str] = ()) -> RecallDataset:
    """Reads a psifr-format event table from CSV (see :func:`from_events`)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such CSV file: {path}")
    try:
        events = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a readable CSV event table: {error}") from error
    return from_events(events, conditions, item_attributes)


def write_csv(dataset: RecallDataset, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Writes the event table to CSV atomically; refuses to replace a file unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    write_text(path, to_events(dataset).to_csv(index=False))
    return path


def read_hdf5(path: str | os.PathLike[str]) -> RecallDataset:
    """Reads the jaxcmr / Kahana-lab HDF5 layout.

    The file holds a ``/data`` group with ``subject`` ``(1, L)``, ``listLength`` ``(1, L)``,
    ``pres_itemnos`` ``(N, L)`` and ``recalls`` ``(R, L)`` (arrays stored transposed); optional
    ``rec_itemnos`` ``(R, L)`` and ``list`` ``(1, L)``. Other datasets of shape ``(1, L)`` become
    conditions.
    """
    import h5py  # a core dependency, imported where it is used

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such HDF5 file: {path}")
    try:
        with h5py.File(path, "r") as handle:
            if "data" not in handle:
                raise ValueError(f"{path} has no /data group (the jaxcmr layout stores arrays under /data)")
            group = handle["data"]
            arrays = {key: np.asarray(group[key][()]).T for key in group.keys()}
    except OSError as error:
        raise ValueError(f"{path} is not a readable HDF5 file: {error}") from error
    missing = [k for k in _HDF5_REQUIRED if k not in arrays]
    if missing:
        raise ValueError(f"{path}: /data lacks {missing}; the layout needs {list(_HDF5_REQUIRED)}")
    n_lists = arrays["subject"].reshape(-1).shape[0]
    conditions = {k: v.reshape(-1) for k, v in arrays.items()
                  if k not in (*_HDF5_REQUIRED, "rec_itemnos", "list") and v.size == n_lists and v.ndim <= 2}
    recalls = arrays["recalls"]
    return RecallDataset(
        subject=arrays["subject"].reshape(-1), list_length=arrays["listLength"].reshape(-1),
        presented=arrays["pres_itemnos"], recalls=recalls,
        list_number=arrays["list"].reshape(-1) if "list" in arrays else None,
        recalled_items=arrays.get("rec_itemnos"), conditions=conditions,
    )


def write_hdf5(dataset: RecallDataset, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Writes the jaxcmr HDF5 layout atomically (see :func:`read_hdf5`); numeric conditions only."""
    import h5py  # a core dependency, imported where it is used

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    arrays = {
        "subject": dataset.subject[:, None], "listLength": dataset.list_length[:, None],
        "list": dataset.list_number[:, None], "pres_itemnos": dataset.presented,
        "recalls": dataset.recalls, "rec_itemnos": dataset.recalled_items,
    }
    for name, column in dataset.conditions.items():
        if np.issubdtype(column.dtype, np.number):
            arrays[name] = column[:, None]
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        with h5py.File(tmp, "w") as f:
            group = f.create_group("data")
            for key, value in arrays.items():
                group.create_dataset(key, data=np.asarray(value).T)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

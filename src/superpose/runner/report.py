"""HTML pages: one per run (figures, metrics, config, metadata) and one for the gallery.

The pages are static files with no external requests: PNGs are linked, plotly figures are
embedded as iframes that load the ``plotly.min.js`` written beside them.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from superpose.runner import files

_STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #1d1d1f; }
h1 { margin-bottom: 0.2rem; } .sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.92rem; }
td, th { border-bottom: 1px solid #ddd; padding: 0.3rem 0.8rem; text-align: left; vertical-align: top; }
th { background: #f4f4f6; }
code, pre { font-family: ui-monospace, Menlo, monospace; font-size: 0.85rem; }
pre { background: #f7f7f9; padding: 0.8rem; overflow-x: auto; }
.status { padding: 0.1rem 0.5rem; border-radius: 0.3rem; font-weight: 600; }
.finished { background: #dff5e1; color: #17632a; } .failed { background: #fde2e1; color: #8a1c14; }
.running, .interrupted, .pending { background: #fff3cd; color: #7a5b00; }
figure { margin: 1rem 0 2rem; } figure img { max-width: 100%; border: 1px solid #eee; }
iframe { width: 100%; height: 560px; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.9rem; margin-top: 0.3rem; }
.thumb { max-width: 260px; max-height: 160px; }
"""


def format_duration(seconds: float, rough: bool = False) -> str:
    """A duration for people: ``"8.2 s"``, ``"6 min 52 s"``, ``"1 h 5 min"``.

    ``rough`` rounds for estimates: to 5 s below a minute, 10 s below 10 minutes, else minutes.
    Accepts finite seconds >= 0.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration is a finite number of seconds >= 0, got {seconds!r}")
    if rough:
        step = 5 if seconds < 60 else 10 if seconds < 600 else 60
        seconds = max(step, step * round(seconds / step))
    elif seconds < 60:
        return f"{seconds:.1f} s"
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min {secs} s" if secs else f"{minutes} min"


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        shown = ", ".join(_format_value(v) for v in value[:8])
        return f"[{shown}{', …' if len(value) > 8 else ''}] ({len(value)} values)" if len(value) > 8 else f"[{shown}]"
    return str(value)


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flattens nested dicts to dotted keys, for tables."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _table(rows: Mapping[str, Any], header: tuple[str, str] = ("name", "value")) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    cells = "".join(
        f"<tr><td><code>{html.escape(str(k))}</code></td><td>{html.escape(_format_value(v))}</td></tr>"
        for k, v in rows.items()
    )
    return f"<table><tr><th>{header[0]}</th><th>{header[1]}</th></tr>{cells}</table>"


def _figure_html(figure: Mapping[str, str]) -> str:
    name = html.escape(figure["file"])
    caption = html.escape(figure.get("caption", ""))
    if figure["kind"] == "html":
        inner = f"<iframe src='{name}' loading='lazy'></iframe>"
        caption = f"{caption} <a href='{name}'>(open interactive figure)</a>"
    else:
        inner = f"<a href='{name}'><img src='{name}' alt='{caption}'></a>"
    return f"<figure>{inner}<figcaption>{caption}</figcaption></figure>"


def write_run_page(out: Path) -> Path:
    """Writes ``out/index.html`` from the run's config, metadata and metrics."""
    out = Path(out)
    meta = files.read_json(out / "run.json")
    config = files.read_json(out / "config.json").get("config", {})
    metrics = files.read_json(out / "metrics.json") if (out / "metrics.json").exists() else {}
    status = meta.get("status", "unknown")
    wall = meta.get("wall_time_s")
    body = [
        f"<h1>{html.escape(meta.get('experiment', out.name))}</h1>",
        f"<p class='sub'>{html.escape(meta.get('description', ''))}</p>",
        f"<p><span class='status {status}'>{status}</span>"
        + (f" in {format_duration(wall)}" if isinstance(wall, (int, float)) else "")
        + "</p>",
    ]
    if meta.get("error"):
        body.append(f"<h2>Error</h2><pre>{html.escape(meta['error'])}</pre>")
    for note in meta.get("notes", []):
        body.append(f"<p>{html.escape(note)}</p>")
    figures = meta.get("figures", [])
    if figures:
        body.append("<h2>Figures</h2>" + "".join(_figure_html(f) for f in figures))
    body.append("<h2>Metrics</h2>" + _table(flatten(metrics)))
    body.append("<h2>Config</h2>" + _table(config))
    keys = ("seed", "quick", "superpose_version", "jax_version", "backend", "devices", "python_version",
            "platform", "started", "finished", "attempts", "cells_computed", "cells_reused", "command")
    body.append("<h2>Run</h2>" + _table({k: meta[k] for k in keys if k in meta}))
    arrays = sorted(p.name for p in out.glob("*.npz"))
    if arrays:
        links = ", ".join(f"<a href='{html.escape(a)}'>{html.escape(a)}</a>" for a in arrays)
        body.append(f"<h2>Arrays</h2><p>{links} (numpy .npz, load with allow_pickle=False)</p>")
    path = out / "index.html"
    files.write_text(path, _page(meta.get("experiment", "run"), "".join(body)))
    return path


def write_gallery_page(
    out: Path, entries: Sequence[Mapping[str, Any]], title: str, summary: str | None = None
) -> Path:
    """Writes the gallery's ``index.html``: one row per experiment, linking its page.

    Each entry holds ``name``, ``description``, ``status``, ``wall_time_s``, ``error``,
    optionally ``expected_s`` (expected wall time on 2 CPU cores) and ``thumbnail`` (a PNG path
    relative to ``out``). ``summary`` is a line on progress shown under the title (None: none).
    """
    rows = []
    for entry in entries:
        name = html.escape(entry["name"])
        status = entry.get("status", "pending")
        wall = entry.get("wall_time_s")
        expected = entry.get("expected_s")
        link = f"<a href='{name}/index.html'>{name}</a>" if status != "pending" else name
        thumb = entry.get("thumbnail")
        thumb_html = f"<a href='{name}/index.html'><img class='thumb' src='{html.escape(thumb)}'></a>" if thumb else ""
        error = entry.get("error")
        error_html = f"<pre>{html.escape(error.splitlines()[0])}</pre>" if error else ""
        rows.append(
            f"<tr><td>{link}<br><small>{html.escape(entry.get('description', ''))}</small>{error_html}</td>"
            f"<td><span class='status {status}'>{status}</span></td>"
            f"<td>{'' if wall is None else format_duration(wall)}</td>"
            f"<td>{'' if expected is None else format_duration(expected, rough=True)}</td><td>{thumb_html}</td></tr>"
        )
    total = sum(e.get("wall_time_s") or 0.0 for e in entries)
    count = f"{len(entries)} experiment{'s' if len(entries) != 1 else ''}"
    body = (
        f"<h1>{html.escape(title)}</h1>"
        f"<p class='sub'>{count}, {format_duration(total)} of run time in all.</p>"
        + (f"<p class='sub'>{html.escape(summary)}</p>" if summary else "")
        + "<table><tr><th>experiment</th><th>status</th><th>wall time</th><th>expected on 2 cores</th>"
        "<th>figure</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    path = Path(out) / "index.html"
    files.write_text(path, _page(title, body))
    return path

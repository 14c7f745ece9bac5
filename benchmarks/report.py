"""The benchmark tables of the docs, rendered from the committed results (``benchmarks/results/*.json``).

A table lives in its page between ``<!-- table: NAME -->`` and ``<!-- end table -->``; NAME is a key of
:data:`TABLES`, which names the results file and the function that renders it. So no number in those
tables is typed by hand, and a test (``tests/test_benchmark_report.py``) fails when a page and its
results disagree.

    python benchmarks/report.py            # check every page: list the tables that differ (exit 1)
    python benchmarks/report.py --write    # rewrite every table from its results file
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PAGES = (ROOT / "docs" / "benchmarks.md", ROOT / "docs" / "scaling.md", ROOT / "docs" / "recall.md")
MARKER = re.compile(r"<!-- table: (?P<name>[a-z0-9-]+) -->\n(?P<body>.*?)<!-- end table -->", re.S)


def _thousands(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ")


def _scientific(value: float) -> str:
    """2.7e-2, not 2.7e-02."""
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join([_row(header), _row(["---"] * len(header)), *map(_row, rows)]) + "\n"


def _gamfit_outcome(row: dict, limit: float) -> str:
    status = row["status"]
    if status.startswith("timeout"):
        return f"killed at the {limit:g} s limit"
    if status.startswith("error: "):
        kind = status[len("error: "):].split(":")[0]
        found = re.search(r"\|Pg\|=([0-9.e+-]+)", status)
        return f"{kind} (‖Pg‖ = {_scientific(float(found.group(1)))})" if found else kind
    return f"model, {status}"


def _pairs(results: dict) -> list[tuple[dict, dict | None]]:
    """(superpose row, gamfit row or None) per design and seed, in the file's order."""
    ours = [r for r in results["rows"] if r["library"] == "superpose"]
    theirs = {(r["design"], r["seed"]): r for r in results["rows"] if r["library"] == "gamfit"}
    return [(r, theirs.get((r["design"], r["seed"]))) for r in ours]


def _seconds(row: dict, first_of_design: bool) -> str:
    return f"{row['seconds']:.1f}" + (" (compile)" if first_of_design else "")


def render_sae_single(results: dict) -> str:
    """One planted circle per design: superpose against gamfit (``benchmarks/sae.py``)."""
    rows, seen = [], set()
    for ours, theirs in _pairs(results):
        first = ours["design"] not in seen
        seen.add(ours["design"])
        returned = theirs is not None and "circular_r2" in theirs
        rows.append([
            ours["design"].removeprefix("single_circle"), str(ours["seed"]), f"{ours['circular_r2']:.3f}",
            _seconds(ours, first), f"{ours['status']}, {ours['evaluations']}",
            f"{theirs['circular_r2']:.3f}" if returned else "–",
            "–" if theirs is None else f"{theirs['seconds']:.1f}",
            "not run" if theirs is None else _gamfit_outcome(theirs, results["limit_seconds"]),
        ])
    header = ["design (n, p)", "seed", "superpose: R²", "seconds", "status, evaluations", "gamfit: R²", "seconds",
              "what gamfit returned"]
    return _table(header, rows)


def render_sae_several(results: dict) -> str:
    """Several circles per row (two_circles, sae-superposed): superpose against gamfit."""
    names = {"two_circles": "two_circles", "superposed_circles": "superposed (8 in R¹²)"}
    rows, seen = [], set()
    for ours, theirs in _pairs(results):
        first = ours["design"] not in seen
        seen.add(ours["design"])
        rows.append([
            names[ours["design"].split("(")[0]], str(ours["seed"]), f"{min(ours['plane_overlap']):.6f}",
            f"{min(ours['circular_r2']):.4f}", _seconds(ours, first),
            f"{ours['status']}, {ours['evaluations']} evaluations",
            "not run" if theirs is None else _gamfit_outcome(theirs, results["limit_seconds"]),
        ])
    header = ["design", "seed", "superpose: worst overlap", "worst circular R²", "seconds", "search", "gamfit"]
    return _table(header, rows)


def render_memory_quick(results: dict) -> str:
    """DrDAM's quick run (``benchmarks/memory.py --quick``): rates, recall time, memory, matmul fraction."""
    rows = []
    for r in results["rows"]:
        per_core = r.get("recall_s_device_per_core")
        rows.append([
            str(r["D"]), f"10{'⁴' if r['Y'] == 10_000 else '⁵' if r['Y'] == 100_000 else str(r['Y'])}",
            _thousands(r["egrad_q_per_s"]), f"{r['recall_s']:.3g} s", f"{r['recall_first_s']:.3g} s",
            f"{per_core:.3g} s" if per_core is not None else "", f"{r['peak_gib']:.2f} GiB",
            f"{r['matmul_fraction']:.2f}",
        ])
    header = ["D", "Y", "energy+grad (queries/s)", "recall 100 steps", "(first call)", "device per core",
              "peak memory", "fraction of the matmul ceiling"]
    return _table(header, rows)


def _scaling_names(settings: dict) -> dict[str, str]:
    """Each workload in words, from the run's own settings."""
    drdam, toy, recall = settings["drdam"], settings["toy"], settings["recall"]
    queries = _thousands(drdam["queries"])
    return {
        "drdam_energy_and_grad": f"DrDAM energy + gradient, {queries} queries (D = {drdam['dim']}, "
                                 f"Y = {_thousands(drdam['features'])})",
        "drdam_descend_10_steps": f"DrDAM `descend`, {drdam['steps']} steps of {queries} queries",
        "toy_train_step": f"toy ensemble, one training step of {toy['models']} models (n = {toy['features']}, "
                          f"m = {toy['hidden']}, batch {toy['batch']})",
        "recall_population_nll": f"recall likelihood of {recall['population']} CMR parameter sets "
                                 f"({recall['lists']} lists of {recall['list_length']})",
    }


def render_scaling(results: dict) -> str:
    """One process and two (``benchmarks/scaling.py``): the script's rows (median per call over rounds,
    with the range of the round medians)."""
    names = _scaling_names(results["settings"])
    rows = [[names[r["workload"]], *(f"{r[f'{layout}_ms']:.1f} ms ({r[f'{layout}_range_ms']})"
                                     for layout in ("1x1", "1x2", "2x1")),
             f"{r['2x1_over_1x2_ratio']:.2f}× ({r['2x1_over_1x2_overhead_ms']:+.1f} ms)"]
            for r in results["rows"]]
    header = ["work per call", "1 process × 1 device", "1 process × 2 devices", "2 processes × 1 device",
              "2 processes against 1 process × 2 devices"]
    return _table(header, rows)


def render_recall_tolerance(results: dict) -> str:
    """Morton2013 subjects 1-3 fitted at DE tol 1e-2 and 1e-3 (``benchmarks/recall_fits.py``)."""
    rows = []
    for tol in sorted({r["tol"] for r in results["rows"]}, reverse=True):
        fits = sorted((r for r in results["rows"] if r["tol"] == tol), key=lambda r: r["subject"])
        seconds = [r["seconds"] for r in fits]
        rows.append([f"{tol:g}", *(f"{r['nll']:.2f}" for r in fits), f"{min(seconds):.1f}–{max(seconds):.1f} s"])
    subjects = sorted({r["subject"] for r in results["rows"]})
    return _table(["DE tol (3 restarts + polish)", *(f"subject {s}" for s in subjects), "seconds per subject"], rows)


def render_recall_confirm(results: dict) -> str:
    """peers_notask subjects 63-67, seeds 0-2: the default fit against confirmed fits."""
    settings = list(dict.fromkeys(r["setting"] for r in results["rows"]))
    subjects = sorted({r["subject"] for r in results["rows"]})
    rows = []
    for setting in settings:
        cells, seconds = [], []
        for subject in subjects:
            fits = sorted((r for r in results["rows"] if r["setting"] == setting and r["subject"] == subject),
                          key=lambda r: r["seed"])
            seconds += [r["seconds"] for r in fits]
            cells.append(" / ".join(f"{r['nll']:.2f}" + (" (budget)" if "budget" in r["status"] else "")
                                    for r in fits))
        rows.append([setting, *cells, f"{min(seconds):.1f}–{max(seconds):.1f} s"])
    return _table(["setting (seeds 0 / 1 / 2)", *map(str, subjects), "seconds per subject"], rows)


#: table name -> (results file under benchmarks/results, renderer)
TABLES: dict[str, tuple[str, Callable[[dict], str]]] = {
    "sae-single": ("sae-cpu.json", render_sae_single),
    "sae-several": ("sae-two-superposed-cpu.json", render_sae_several),
    "memory-quick": ("memory-cpu.json", render_memory_quick),
    "scaling": ("scaling-cpu.json", render_scaling),
    "recall-tolerance": ("recall-tolerance-cpu.json", render_recall_tolerance),
    "recall-confirm": ("recall-confirm-cpu.json", render_recall_confirm),
}


def render(name: str) -> str:
    """The markdown of table ``name`` from its committed results file."""
    if name not in TABLES:
        raise ValueError(f"no table named {name!r}; known: {', '.join(TABLES)}")
    file, renderer = TABLES[name]
    return renderer(json.loads((RESULTS / file).read_text()))


def differences(text: str, page: str = "page") -> list[str]:
    """What is wrong with the tables in one page's ``text`` (empty: every table matches its results)."""
    problems = []
    for found in MARKER.finditer(text):
        name = found["name"]
        if name not in TABLES:
            problems.append(f"{page}: unknown table {name!r}")
        elif found["body"] != render(name):
            problems.append(f"{page}: table {name!r} differs from benchmarks/results/{TABLES[name][0]}")
    return problems


def check(pages=PAGES) -> list[str]:
    """Every page's tables against their results; also every known table must appear in some page."""
    problems, seen = [], set()
    for page in pages:
        text = page.read_text()
        problems += differences(text, page.name)
        seen |= {found["name"] for found in MARKER.finditer(text)}
    problems += [f"table {name!r} appears in no page" for name in TABLES if name not in seen]
    return problems


def write(pages=PAGES) -> None:
    """Rewrites every marked table from its results file."""
    for page in pages:
        text = page.read_text()
        new = MARKER.sub(lambda m: f"<!-- table: {m['name']} -->\n{render(m['name'])}<!-- end table -->", text)
        if new != text:
            page.write_text(new)
            print(f"rewrote the tables of {page.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the tables instead of checking them")
    if parser.parse_args().write:
        write()
        return
    problems = check()
    print("\n".join(problems) if problems else "every table matches its results")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

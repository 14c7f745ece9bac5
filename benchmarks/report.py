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
import statistics
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


def render_recall_goal(results: dict) -> str:
    """Issue 16's fit goal (``benchmarks/recall_fits.py --study goal``): the default fit's seeds against a
    long reference search, with jaxcmr (and cymr when run) on the same subject, then the goals judged."""
    rows, gaps, speedups = [], [], []
    with_cymr = any("cymr" in r for r in results["rows"])
    for r in results["rows"]:
        ours = r["superpose"]
        seconds = statistics.median(f["seconds"] for f in ours)
        gap = max(f["nll"] for f in ours) - r["best_nll"]
        gaps.append((gap, f"{r['dataset']} {r['subject']}"))
        theirs = r.get("jaxcmr", {})
        jaxcmr = (f"{theirs['nll']:.2f} ({theirs['seconds']:.0f} s)" if "nll" in theirs else "failed") if theirs else "not run"
        if "seconds" in theirs:
            speedups.append(theirs["seconds"] / seconds)
        cells = [r["dataset"], str(r["subject"]),
                 " / ".join(f"{f['nll']:.2f}" + (" (budget)" if "budget" in f["status"] else "") for f in ours),
                 "/".join(str(f["restarts"]) for f in ours), f"{r['reference']['nll']:.2f}", f"{gap:.2f}",
                 f"{seconds:.1f} s", jaxcmr]
        if with_cymr:
            cells.append(f"{r['cymr']['nll']:.2f} ({r['cymr']['seconds']:.0f} s)" if "cymr" in r else "not run")
        rows.append(cells)
    header = ["data set", "subject", "default fit, seeds 0 / 1 / 2 (NLL)", "restarts", "reference search",
              "worst seed − best", "seconds (median of seeds)", "jaxcmr 0.1.1 NLL (seconds)"]
    if with_cymr:
        header.append("cymr 0.14.3 NLL (seconds)")
    worst, where = max(gaps)
    within = sum(g <= 0.5 for g, _ in gaps)
    ratio = statistics.median(speedups) if speedups else float("nan")
    goals = (f"\nEvery seed within 0.5 nats of the best known NLL: **{'met' if within == len(gaps) else 'not met'}** "
             f"({within} of {len(gaps)} subjects; the largest gap is {worst:.2f} nats, {where}). A default fit "
             f"within a fifth of jaxcmr's time: **{'met' if speedups and min(speedups) >= 5 else 'not met'}** "
             f"(jaxcmr's fit over ours: median {ratio:.1f}×, {min(speedups, default=float('nan')):.1f}–"
             f"{max(speedups, default=float('nan')):.1f}× over subjects).\n")
    if with_cymr:
        worse = [f"{r['dataset']} {r['subject']} ({max(f['nll'] for f in r['superpose']):.2f} against "
                 f"{r['cymr']['nll']:.2f})" for r in results["rows"]
                 if "cymr" in r and max(f["nll"] for f in r["superpose"]) > r["cymr"]["nll"]]
        goals += (f"\nNo worse than cymr on any subject: **{'met' if not worse else 'not met'}**"
                  + (f" (worse on {'; '.join(worse)}; cymr's model differs: its choice rule is exp(2a/T))"
                     if worse else "") + ". cymr's fits ran in a run of their own, so their seconds were not "
                  "measured beside ours.\n")
    return _table(header, rows) + goals


def render_recall_variants(results: dict) -> str:
    """``benchmarks/recall_variants.py``: each variant's population rate and cymr's single call, paired rounds."""
    def cell(stats: dict, digits: int) -> str:
        return f"{stats['median']:.{digits}f} ({stats['low']:.{digits}f}–{stats['high']:.{digits}f})"

    rows = []
    for r in results["rows"]:
        rows.append([r["model"], cell(r["superpose_ms_per_set"], 3),
                     cell(r["cymr_ms_per_call"], 1) if "cymr_ms_per_call" in r else "–",
                     _speedup(r["cymr_over_superpose"]) if "cymr_over_superpose" in r else "–"])
    return _table(["model", "superpose ms per set (median, range)", "cymr 0.14.3 ms per call",
                   "cymr's call over superpose's set"], rows)


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _power(value: int) -> str:
    """10⁴ for 10 000; other values with spaces between thousands."""
    exponent = len(str(value)) - 1
    if value == 10**exponent:
        return "10" + str(exponent).translate(_SUPERSCRIPT)
    return _thousands(value)


def _times_ten(value: float) -> str:
    """2.6·10⁵ for 262 000."""
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}·10{str(int(exponent)).translate(_SUPERSCRIPT)}"


def _speedup(ratio: dict) -> str:
    """A paired speed-up: the median of the rounds' ratios, with their range."""
    return f"{ratio['median']:.1f}× ({ratio['low']:.1f}–{ratio['high']:.1f})"


def _rate(value: float) -> str:
    return f"{value / 1e6:.2f} M"


def _time(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def render_choice_rule(results: dict) -> str:
    """``benchmarks/numerics.py``: rows per second, medians over paired rounds."""
    rows = [[_power(r["rows"]), _rate(r["superpose_rows_per_s"]), _rate(r["sharded_rows_per_s"]),
             _rate(r["numpy_rows_per_s"]), _speedup(r["speedup_vs_numpy"]),
             f"{100 * (r['sharded_cost']['median'] - 1):+.0f}%"] for r in results["rows"]]
    header = ["rows", "superpose (rows/s)", "through `sharded` (rows/s)", "numpy (rows/s)",
              f"speed-up over numpy (median of {results['rounds']} rounds, range)", "`sharded`'s cost (median)"]
    return _table(header, rows)


def render_drdam(results: dict) -> str:
    """``benchmarks/memory.py`` with the reference: per-call rates (compiled on both sides) and recall times."""
    rows = []
    for r in results["rows"]:
        if r.get("egrad_q_per_s") is None or r.get("recall_s") is None:  # a child failed: its error is in the file
            rows.append([str(r["D"]), _power(r["Y"]), "failed (see the results file)", *[""] * 10])
            continue
        reference = "ref_egrad_q_per_s" in r
        per_core = r.get("recall_s_device_per_core")
        rows.append([str(r["D"]), _power(r["Y"]), _thousands(r["egrad_q_per_s"]),
                     _thousands(r["ref_egrad_q_per_s"]) if reference else "–",
                     _speedup(r["egrad_speedup"]) if reference else "–",
                     _time(r["recall_s"]), _time(per_core) if per_core else "",
                     _time(r["recall_first_s"]), _time(r["ref_recall_s"]) if reference else "–",
                     _speedup(r["recall_speedup_end_to_end"]) if reference else "–",
                     f"{r['peak_gib']:.2f} GiB", f"{r['ref_peak_gib']:.2f} GiB" if reference else "–",
                     f"{r['matmul_fraction']:.2f}"])
    header = ["D", "Y", "energy+grad, superpose (queries/s)", "reference", "speed-up per call (compiled)",
              "recall 100 steps, superpose (compiled)", "recall, one device per core (compiled)",
              "superpose's first call (compiles)",
              "reference's call (compiles)", "speed-up end to end", "peak memory, superpose", "reference",
              "fraction of the matmul ceiling"]
    return _table(header, rows)


def render_drdam_goals(results: dict) -> str:
    """DrDAM's goals (issue 3) judged from the same run: recall at D = 30, Y = 10⁵ ten times the
    reference's speed on 2 cores, and at least half the float32 matmul ceiling at D = 784."""
    rows = {(r["D"], r["Y"]): r for r in results["rows"]}
    lines = []
    small = rows.get((30, 100_000))
    if small and "recall_speedup_end_to_end" in small:
        end, per_call = small["recall_speedup_end_to_end"], small["egrad_speedup"]
        compiled = small["recall_speedup_compiled_vs_call"]
        lines.append(
            f"**Recall at D = 30, Y = 10⁵ (goal: 10× the reference on 2 cores).** End to end, compilation on "
            f"both sides, superpose is {_speedup(end)} the reference's speed: the goal is "
            f"{'met' if end['low'] >= 10 else 'met in the median' if end['median'] >= 10 else 'not met'}. "
            f"Its compiled recall is {_speedup(compiled)} the reference's call (which compiles: not like for like), "
            f"and one energy+gradient call, both compiled, {_speedup(per_call)}.")
    fractions = [(y, rows[(784, y)]["matmul_fraction"]) for y in (10_000, 100_000) if (784, y) in rows]
    if fractions:
        verdict = "met" if min(f for _, f in fractions) >= 0.5 else "not met"
        lines.append(
            f"**D = 784 (goal: at least half the float32 matmul ceiling).** The energy+gradient pass reaches "
            + " and ".join(f"{f:.2f} (Y = {_power(y)})" for y, f in fractions)
            + f" of the ceiling measured in the same run ({results['matmul_gflops']:.0f} GFLOP/s, the best of "
              f"seven 4096³ products): {verdict}.")
    return "\n\n".join(lines) + "\n"


def render_drdam_projection(results: dict) -> str:
    """Stored against regenerated projection (``benchmarks/memory.py``)."""
    rows = []
    for r in results["projection"]:
        stored = r.get("stored_egrad_s")
        share = r.get("generator_share")
        rows.append([str(r["D"]), _power(r["Y"]), f"{r['D'] * r['Y'] * 4 / 2**30:.2f} GiB",
                     f"{_time(stored)}, {r['stored_peak_gib']:.2f} GiB" if stored else "not stored",
                     f"{_time(r['regenerated_egrad_s'])}, {r['regenerated_peak_gib']:.2f} GiB",
                     f"{100 * share:.0f}%" if share else ""])
    header = ["D", "Y", "projection size", "stored: one energy+grad call, peak",
              "regenerated: one energy+grad call, peak", "generator's share"]
    return _table(header, rows)


def render_drdam_exact(results: dict) -> str:
    """The exact energy streamed over memories, and where DrDAM becomes cheaper (from the same run)."""
    counts = sorted({r["K"] for r in results["exact"]})
    rows = []
    for d in sorted({r["D"] for r in results["exact"]}):
        by_k = {r["K"]: r for r in results["exact"] if r["D"] == d}
        cross = [c for c in results["crossover"] if c["D"] == d]
        rows.append([str(d), *(_time(by_k[k]["exact_egrad_s"]) for k in counts),
                     f"{by_k[counts[-1]]['peak_gib']:.2f} GiB",
                     ", ".join(f"{_thousands(round(c['crossover_K'], -2))} (Y = {_power(c['Y'])})" for c in cross)])
    header = ["D", *(f"K = {_power(k)}" for k in counts), f"peak at K = {_power(counts[-1])}",
              "DrDAM cheaper beyond K ≈"]
    return _table(header, rows)


def render_drdam_ablation(results: dict) -> str:
    """``benchmarks/memory.py --ablation``: each CPU choice against its alternative, paired rounds."""
    pairs = [
        ("`descend`'s concurrent parts against one call", "descend_one_part", "descend_concurrent_parts"),
        ("512-bit vectors against XLA's default (energy+gradient)", "egrad_xla_default_vectors",
         "egrad_512_bit_vectors"),
        ("fused `sincos` against `jnp.sin` and `jnp.cos` (10⁷ float32)", "sin_cos_library", "sincos_fused"),
        ("threefry against `rbg` (the projection's normals)", "normals_rbg", "normals_threefry2x32"),
        ("threefry against `unsafe_rbg`", "normals_unsafe_rbg", "normals_threefry2x32"),
    ]
    rows = [[label, *(_speedup(_ratios(r["samples"][slow], r["samples"][fast])) for r in results["rows"])]
            for label, slow, fast in pairs]
    rounds = len(results["rows"][0]["samples"]["descend_one_part"])
    header = [f"gain (median of {rounds} paired rounds, range)",
              *(f"D = {r['D']}, Y = {_power(r['Y'])}" for r in results["rows"])]
    return _table(header, rows)


def _ratios(slower: list[float], faster: list[float]) -> dict:
    """The paired ratios' median and range, by the same rule as ``_common.ratio_summary`` (which this
    page's checker does not import: it would import JAX)."""
    ratios = [a / b for a, b in zip(slower, faster)]
    return {"median": statistics.median(ratios), "low": min(ratios), "high": max(ratios)}


def render_toy(results: dict) -> str:
    """``benchmarks/toy.py``: the seed's PyTorch loop against superpose, per step and per panel."""
    rows = []
    for r in results["rows"]:
        step = r["s_per_step"]
        panel = r.get("panel_s")
        compiled = r.get("panel_s_compiled")
        rows.append([r["what"], f"{step['median']:.4f} ({step['low']:.4f}–{step['high']:.4f})",
                     _speedup(r["speedup"]) if "speedup" in r else "1×" if r["what"].startswith("seed") else "–",
                     f"{panel:.1f} s" + (f" ({compiled:.1f} s compiled)" if compiled else "") if panel else "–"])
    header = [f"{_thousands(results['rows'][0]['models'])} models", f"s per step (median of {results['rounds']} rounds, range)",
              "speed-up", f"one {results['panel_steps']}-step panel (superpose: first call, compiling)"
              if results["panel_steps"] else "full panel (not run)"]
    return _table(header, rows)


def render_toy_million(results: dict) -> str:
    """The 10⁶-model ensemble (``benchmarks/toy.py``), one timed call each."""
    rows = [[f"{_power(r['models'])} models, {r['what'].removeprefix('superpose, ')}", _time(r['s_per_step']),
             _times_ten(r["model_steps_per_s"])]
            for r in results["million"]]
    return _table(["ensemble", "s per step", "model-steps per s"], rows)


def render_toy_hierarchy(results: dict) -> str:
    """The whole toy-hierarchy experiment at the seed's size (``benchmarks/toy.py --hierarchy``)."""
    agreement = results["toy_hierarchy_agreement"]
    rows = [["without", f"{results['toy_hierarchy_full_s_exact_false']:.0f} s", "–", "–"],
            ["with", f"{results['toy_hierarchy_full_s_exact_true']:.0f} s",
             f"{100 * agreement['analytic_agreement']:.1f}%", f"{100 * agreement['majority_agreement']:.1f}%"]]
    return _table(["exact overlay", "wall time", "best-of-10 class = exact class", "majority class = exact class"],
                  rows)


def render_recall_speed(results: dict) -> str:
    """``benchmarks/recall.py``: each peer's speeds (medians over paired rounds) and fits."""
    names = {"superpose": "superpose (float32; the fit's polish and NLL in float64)",
             "cymr": "cymr (NumPy, float64)", "jaxcmr 0.1.1": "jaxcmr 0.1.1 (JAX, its default dtype)"}
    rows = []
    for r in results["rows"]:
        fit = r.get("fit_s")
        fits = len(fit["samples"]) if fit else 0
        fit_text = "–" if not fit else (f"{fit['median']:.1f} s ({fit['low']:.1f}–{fit['high']:.1f})"
                                        if fits > 1 else f"{fit['median']:.0f} s (one fit)")
        if r["peer"] == "superpose":
            fit_text = f"{fit['median']:.1f} s compiled ({fit['low']:.1f}–{fit['high']:.1f}); {r['first_fit_s']:.1f} s first in process"
        population = r.get("population_ms_per_set")
        two = r.get("two_threads_ms_per_set")
        rows.append([names[r["peer"]], f"{r['single_ms']['median']:.3g} ms",
                     f"{population['median']:.3g} ms" if population else "– (one set per call)",
                     f"{two['median']:.3g} ms" if two else "–", fit_text,
                     " / ".join(f"{v:.2f}" for v in r["nll"])])
    header = ["peer (precision)", "one evaluation", "per set, population of 165 in one call",
              "per set, two calls at once", "fit of one subject", "NLL reached (each fit)"]
    return _table(header, rows)


def render_recall_ratios(results: dict) -> str:
    """The speed-ups of ``benchmarks/recall.py``, each the median of paired rounds with its range."""
    labels = {
        "single_vs_jaxcmr": ("one evaluation against jaxcmr's", "same data and precision; the models differ"),
        "single_vs_cymr": ("one evaluation against cymr's", "same data; float32 against float64; the models differ"),
        "population_vs_jaxcmr": ("population per set against jaxcmr's, one call",
                                 "same data and precision; the models differ"),
        "two_threads_vs_jaxcmr_population": ("population per set, two calls at once, against jaxcmr's one call",
                                             "what a fit gains"),
        "population_vs_cymr_single": ("population per set against cymr's single call",
                                      "no: batched float32 against one float64 set"),
        "two_threads_vs_cymr_single": ("two populations at once against cymr's single call",
                                       "no: batched float32 against one float64 set"),
        "fit_compiled_vs_jaxcmr": ("fit of one subject, superpose compiled, against jaxcmr's fit (which compiles its loss)",
                                   "no: compilation on jaxcmr's side only"),
        "fit_first_in_process_vs_jaxcmr": ("fit of one subject, superpose's first in its process (one sample), against "
                                           "each round's jaxcmr fit", "whole fits, compilation on both sides"),
    }
    rows = [[labels[k][0], _speedup(v), labels[k][1]] for k, v in results["speed_ratios"].items()]
    return _table(["comparison", f"superpose's speed-up (median of {results['rounds']} rounds, range)",
                   "like for like?"], rows)


def render_compile_options(results: dict) -> str:
    """``benchmarks/compile_options.py``: compile and run time under XLA's defaults and CHEAP_COMPILE."""
    def cell(stats: dict, scale: float, digits: int) -> str:
        return f"{scale * stats['median']:.{digits}f} ({scale * stats['low']:.{digits}f}–{scale * stats['high']:.{digits}f})"

    rows = [[f"`{r['name']}`: {r['function'].split(' (')[0]} ({r['function'].split(' (', 1)[1]}",
             cell(r["compile_s"]["default"], 1, 2), cell(r["compile_s"]["cheap"], 1, 2),
             _speedup(r["compile_s"]["default_over_cheap"]), cell(r["run_s"]["default"], 1e3, 3),
             cell(r["run_s"]["cheap"], 1e3, 3), _speedup(r["run_s"]["default_over_cheap"])] for r in results["rows"]]
    return _table(["function (problem)", "compile s, default", "compile s, CHEAP_COMPILE", "compile speed-up",
                   "run ms, default", "run ms, CHEAP_COMPILE", "run speed-up"], rows)


#: table name -> (results file under benchmarks/results, renderer)
TABLES: dict[str, tuple[str, Callable[[dict], str]]] = {
    "sae-single": ("sae-cpu.json", render_sae_single),
    "sae-several": ("sae-two-superposed-cpu.json", render_sae_several),
    "choice-rule": ("numerics-cpu.json", render_choice_rule),
    "drdam": ("memory-cpu.json", render_drdam),
    "drdam-goals": ("memory-cpu.json", render_drdam_goals),
    "drdam-projection": ("memory-cpu.json", render_drdam_projection),
    "drdam-exact": ("memory-cpu.json", render_drdam_exact),
    "drdam-ablation": ("memory-ablation-cpu.json", render_drdam_ablation),
    "toy": ("toy-cpu.json", render_toy),
    "toy-million": ("toy-cpu.json", render_toy_million),
    "toy-hierarchy": ("toy-cpu.json", render_toy_hierarchy),
    "recall-speed": ("recall-cpu.json", render_recall_speed),
    "recall-ratios": ("recall-cpu.json", render_recall_ratios),
    "scaling": ("scaling-cpu.json", render_scaling),
    "recall-tolerance": ("recall-tolerance-cpu.json", render_recall_tolerance),
    "recall-confirm": ("recall-confirm-cpu.json", render_recall_confirm),
    "recall-goal": ("recall-goal-cpu.json", render_recall_goal),
    "recall-variants": ("recall-variants-cpu.json", render_recall_variants),
    "compile-options": ("compile-options-cpu.json", render_compile_options),
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
        elif not (RESULTS / TABLES[name][0]).exists():
            problems.append(f"{page}: table {name!r} has no results file benchmarks/results/{TABLES[name][0]}")
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

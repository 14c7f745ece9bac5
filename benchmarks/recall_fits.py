"""How fitting settings change the NLL that CMR fits reach, and their time: the studies behind docs/recall.md.

- ``--study tolerance``: Morton2013 subjects 1-3, 3 restarts + polish at DE tol 1e-2 and 1e-3 (seed 0),
  after one warm-up fit, so that no timed fit compiles.
- ``--study confirm``: peers_notask subjects 63-67, seeds 0, 1, 2: the default fit, and confirmed fits
  (``confirm=0.1``) with ``agree`` 2 at tol 1e-2, 2 at tol 1e-3 and 3 at tol 1e-3 (2 restarts at least,
  12 at most).

- ``--study goal``: issue 16's goal. Morton2013 subjects 1-5 and peers_notask 63-67: the default fit
  with seeds 0, 1, 2 against a long reference search (16 restarts at DE tol 1e-3, each polished from
  5 distinct end members, seed 7) and one jaxcmr 0.1.1 fit (``JAXCMR_PYTHON``, as in
  benchmarks/recall.py), subject by subject in one process, so that times compare within the run.
  ``--study goal-cymr`` adds a cymr 0.14.3 fit (tol 1e-3) of each subject to that results file, in a
  run of its own (minutes per Morton2013 subject; its seconds were not measured beside ours).

Each writes ``benchmarks/results/recall-<study>-cpu.json`` (every fit: NLL, seconds, restarts, status),
from which ``benchmarks/report.py`` renders the tables of docs/recall.md.

    python benchmarks/recall_fits.py --study tolerance
    python benchmarks/recall_fits.py --study confirm
    JAXCMR_PYTHON=/path/to/jaxcmr-venv/bin/python python benchmarks/recall_fits.py --study goal
    python benchmarks/recall_fits.py --study goal-cymr
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import print_table, write_results
from superpose.recall import fit, load_sample

GOAL_SUBJECTS = {"Morton2013": (1, 2, 3, 4, 5), "peers_notask": (63, 64, 65, 66, 67)}
REFERENCE = {"confirm": None, "restarts": 16, "tol": 1e-3, "polish_starts": 5, "seed": 7}
"""The long reference search the default fit is measured against."""

CONFIRM_SETTINGS = {
    "default": {},
    "confirm 0.1, agree 2, tol 1e-2": {"confirm": 0.1, "agree": 2, "tol": 1e-2, "restarts": 2},
    "confirm 0.1, agree 2, tol 1e-3": {"confirm": 0.1, "agree": 2, "tol": 1e-3, "restarts": 2},
    "confirm 0.1, agree 3, tol 1e-3": {"confirm": 0.1, "agree": 3, "tol": 1e-3, "restarts": 2},
}


def one_fit(dataset, subject: int, seed: int, **options) -> dict:
    """One ``fit`` of one subject: NLL, wall seconds (first fit of a shape includes compiling), restarts, status."""
    start = time.perf_counter()
    f = fit(dataset, [subject], seed=seed, **options).fits[0]
    return {"subject": subject, "seed": seed, "nll": f.nll, "seconds": time.perf_counter() - start,
            "restarts": len(f.restart_nlls), "restarts_at_best": f.restarts_at_best, "status": f.status,
            "final_nlls": f.final_nlls}


def tolerance_study() -> list[dict]:
    data = load_sample("Morton2013")
    one_fit(data, 1, 99)  # compiles: no timed fit below pays for it
    return [{"tol": tol, **one_fit(data, subject, 0, tol=tol, restarts=3)}
            for tol in (1e-2, 1e-3) for subject in (1, 2, 3)]


def confirm_study() -> list[dict]:
    data = load_sample("peers_notask")
    one_fit(data, 63, 99)  # compiles
    return [{"setting": name, **one_fit(data, subject, seed, **options)}
            for name, options in CONFIRM_SETTINGS.items() for subject in (63, 64, 65, 66, 67) for seed in (0, 1, 2)]


def cymr_fit_subject(raw, subject: int, n_items: int) -> dict:
    """One cymr fit (tol 1e-3) of a subject of psifr's event table, items by study position as in recall.py."""
    from recall import cymr_fit, cymr_setup

    model, data, definition, patterns = cymr_setup(raw, subject=subject, n_items=n_items)
    return cymr_fit(model, data, definition, patterns, seed=0)


def goal_study() -> list[dict]:
    from recall import jaxcmr_measure

    rows = []
    for name, subjects in GOAL_SUBJECTS.items():
        data = load_sample(name)
        for subject in subjects:
            row = {"dataset": name, "subject": subject}
            row["superpose"] = [one_fit(data, subject, seed) for seed in (0, 1, 2)]
            row["reference"] = one_fit(data, subject, **REFERENCE)
            theirs = jaxcmr_measure(data.select(subjects=[subject]), 1)
            if theirs is not None:
                row["jaxcmr"] = theirs.get("fits", [{"error": theirs.get("error", "failed")}])[0]
            best = min(f["nll"] for f in row["superpose"] + [row["reference"]])
            row["best_nll"] = best
            row["worst_seed_gap"] = max(f["nll"] for f in row["superpose"]) - best
            print(name, subject, "seeds", [round(f["nll"], 2) for f in row["superpose"]],
                  [round(f["seconds"], 1) for f in row["superpose"]], "reference", round(row["reference"]["nll"], 2),
                  "jaxcmr", row.get("jaxcmr"), flush=True)
            rows.append(row)
    return rows


def goal_cymr() -> tuple[list[dict], dict]:
    """The goal study's rows with a cymr fit of each subject added (read from and written to its file)."""
    import json

    from _common import RESULTS
    from psifr import fr

    stored = json.loads((RESULTS / "recall-goal-cpu.json").read_text())
    raws = {}
    for row in stored["rows"]:
        raw = raws.setdefault(row["dataset"], fr.sample_data(row["dataset"]))
        n_items = int(load_sample(row["dataset"]).presented.shape[1])
        row["cymr"] = cymr_fit_subject(raw, row["subject"], n_items)
        print(row["dataset"], row["subject"], "cymr", row["cymr"], flush=True)
    extra = {k: v for k, v in stored.items() if k not in ("rows", "machine")}
    return stored["rows"], {**extra, "cymr_machine_note": "cymr fits ran in a separate run (--study goal-cymr)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", choices=("tolerance", "confirm", "goal", "goal-cymr"), required=True)
    args = parser.parse_args()
    if args.study == "goal":
        rows = goal_study()
        print("wrote", write_results("recall-goal", rows, {"study": "goal", "reference": REFERENCE}))
        return
    if args.study == "goal-cymr":
        rows, extra = goal_cymr()
        print("wrote", write_results("recall-goal", rows, extra))
        return
    rows = tolerance_study() if args.study == "tolerance" else confirm_study()
    print_table([{k: v for k, v in r.items() if k != "final_nlls"} for r in rows])
    print("wrote", write_results(f"recall-{args.study}", rows, {"study": args.study}))


if __name__ == "__main__":
    sys.exit(main())

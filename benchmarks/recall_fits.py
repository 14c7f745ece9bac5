"""How fitting settings change the NLL that CMR fits reach, and their time: the studies behind docs/recall.md.

- ``--study tolerance``: Morton2013 subjects 1-3, 3 restarts + polish at DE tol 1e-2 and 1e-3 (seed 0),
  after one warm-up fit, so that no timed fit compiles.
- ``--study confirm``: peers_notask subjects 63-67, seeds 0, 1, 2: the default fit, and confirmed fits
  (``confirm=0.1``) with ``agree`` 2 at tol 1e-2, 2 at tol 1e-3 and 3 at tol 1e-3 (2 restarts at least,
  12 at most).

Each writes ``benchmarks/results/recall-<study>-cpu.json`` (every fit: NLL, seconds, restarts, status),
from which ``benchmarks/report.py`` renders the tables of docs/recall.md.

    python benchmarks/recall_fits.py --study tolerance
    python benchmarks/recall_fits.py --study confirm
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import print_table, write_results
from superpose.recall import fit, load_sample

CONFIRM_SETTINGS = {
    "default": {},
    "confirm 0.1, agree 2, tol 1e-2": {"confirm": 0.1, "agree": 2, "tol": 1e-2, "restarts": 2},
    "confirm 0.1, agree 2, tol 1e-3": {"confirm": 0.1, "agree": 2, "tol": 1e-3, "restarts": 2},
    "confirm 0.1, agree 3, tol 1e-3": {"confirm": 0.1, "agree": 3, "tol": 1e-3, "restarts": 2},
}


def one_fit(dataset, subject: int, seed: int, **options) -> dict:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", choices=("tolerance", "confirm"), required=True)
    args = parser.parse_args()
    rows = tolerance_study() if args.study == "tolerance" else confirm_study()
    print_table([{k: v for k, v in r.items() if k != "final_nlls"} for r in rows])
    print("wrote", write_results(f"recall-{args.study}", rows, {"study": args.study}))


if __name__ == "__main__":
    sys.exit(main())

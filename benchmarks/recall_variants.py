"""Population rates of the CMR variants on Morton2013 subject 1, against the base model and cymr.

    python benchmarks/recall_variants.py [--calls 5] [--rounds 3] [--no-cymr]

Each superpose sample is the median of ``--calls`` compiled population calls of 165 parameter sets
(float32), per set; cymr's is one ``likelihood_subject`` call (float64), the median of ``--calls``.
Samples come from ``--rounds`` paired rounds (every side once per round, the order alternating);
writes ``benchmarks/results/recall-variants-cpu.json``, which ``benchmarks/report.py`` renders in
docs/recall.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_time, paired_rounds, print_table, ratio_summary, summary, write_results  # noqa: E402
from superpose.recall import distances_by_item, load_sample, population_nll, prepare  # noqa: E402
from superpose.recall.parameters import DEFAULT_FIXED, DEFAULT_FREE, uniform_population  # noqa: E402
from superpose.recall.variants import (  # noqa: E402
    VARIANT_BOUNDS,
    CMRVariant,
    VariantParameters,
    prepare_variant,
    similarity_from_distances,
    variant_population_nll,
)

SETS = 165
VARIANTS = {"semantic": CMRVariant(semantic=True), "instance": CMRVariant(memory="instance"),
            "semantic+instance": CMRVariant(semantic=True, memory="instance"),
            "category": CMRVariant(category=True), "semantic+category": CMRVariant(semantic=True, category=True),
            "category+instance": CMRVariant(category=True, memory="instance"),
            "semantic+category+instance": CMRVariant(semantic=True, category=True, memory="instance")}


def cymr_semantic_setup(raw, words, similarity, subject: int = 1):
    """cymr's CMR with pre-experimental M^CF = Acf + Dcf·loc + Scf·sem over the word pool."""
    from cymr import cmr

    data = raw[(raw.subject == subject)].copy()
    study = data[data.trial_type == "study"].set_index(["list", "item"])["position"]
    keep = [(lst, item) in study.index for lst, item in zip(data["list"], data["item"])]
    data = data[keep].copy()
    where = {str(w): i for i, w in enumerate(words)}
    data["item_index"] = [where[str(w)] for w in data["item"]]
    patterns = {"items": np.asarray(words, dtype=object),
                "vector": {"loc": np.eye(len(words)), "sem": np.nan_to_num(similarity)}}
    definition = cmr.CMRParameters()
    definition.set_fixed(Afc=0, Aff=0, Dff=1)
    definition.set_dependent(Dfc="1 - Lfc", Dcf="1 - Lcf")
    definition.set_free(B_enc=(0, 1), B_start=(0, 1), B_rec=(0, 1), Lfc=(0, 1), Lcf=(0, 1), P1=(0, 10),
                        P2=(0.1, 5), T=(0.01, 10), X1=(0, 1), X2=(0, 5), Acf=(0, 1), Scf=(0, 10))
    definition.set_sublayers(f=["task"], c=["task"])
    definition.set_weights("fc", {(("task", "item"), ("task", "item")): "loc"})
    definition.set_weights("cf", {(("task", "item"), ("task", "item")): "loc + Scf * sem"})
    return cmr.CMR(), data, definition, patterns


def cymr_ms(model, data, definition, patterns, calls: int, **extra) -> float:
    study, recall = model.prepare_sim(data)
    param = definition.eval_dependent({"B_enc": 0.7, "B_start": 0.3, "B_rec": 0.8, "Lfc": 0.3, "Lcf": 0.3, "P1": 2.0,
                                       "P2": 1.0, "T": 0.1, "X1": 0.01, "X2": 0.3, "Acf": 0.1, "Afc": 0, "Aff": 0,
                                       "Dff": 1, **extra})
    return best_time(lambda: model.likelihood_subject(study, recall, param, definition, patterns), repeats=calls,
                     min_time=0.0) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=5, help="timed calls per sample (the median is kept)")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds, the sides alternating")
    parser.add_argument("--no-cymr", action="store_true")
    args = parser.parse_args()

    from psifr import fr

    data = load_sample("Morton2013")
    words, distances = fr.sample_distances("Morton2013")
    similarity = similarity_from_distances(distances_by_item(data, words, distances))
    subject = data.select(subjects=[1])
    base = uniform_population(jax.random.key(0), SETS, DEFAULT_FREE, DEFAULT_FIXED)
    rng = np.random.default_rng(0)
    extra = {n: np.asarray(rng.uniform(*VARIANT_BOUNDS[n], SETS), np.float32) for n in VARIANT_BOUNDS}
    population = VariantParameters(base, extra["semantic_scale"], np.minimum(extra["trace_sensitivity"], 5.0),
                                   extra["category_drift_rate"], extra["category_weight"])
    trials = prepare(subject)
    calls = {"base": lambda: population_nll(base, trials)}
    for name, variant in VARIANTS.items():
        vt = prepare_variant(subject, variant, similarity=similarity)
        calls[name] = (lambda vt=vt, variant=variant: variant_population_nll(population, vt, variant))
    # each sample: the median of --calls single calls (min_time=0: one call per timed batch)
    timers = {name: (lambda call=call: best_time(call, repeats=args.calls, min_time=0.0) * 1e3 / SETS)
              for name, call in calls.items()}
    if not args.no_cymr:
        from recall import cymr_setup  # benchmarks/recall.py: cymr's base model, items by study position

        raw = fr.sample_data("Morton2013")
        cymr_base, cymr_semantic = cymr_setup(raw), cymr_semantic_setup(raw, data.words, similarity)
        timers["cymr base"] = lambda: cymr_ms(*cymr_base, args.calls)
        timers["cymr semantic"] = lambda: cymr_ms(*cymr_semantic, args.calls, Scf=1.0)
    samples = paired_rounds(timers, args.rounds)
    rows = [{"model": name, "superpose_ms_per_set": summary(samples[name])} for name in calls]
    for row in rows:
        peer = {"base": "cymr base", "semantic": "cymr semantic"}.get(row["model"])
        if peer in samples:
            row["cymr_ms_per_call"] = summary(samples[peer])
            row["cymr_over_superpose"] = ratio_summary(samples[peer], samples[row["model"]])
    print_table([{"model": r["model"], "ms_per_set": r["superpose_ms_per_set"]["median"],
                  "cymr_ms": r.get("cymr_ms_per_call", {}).get("median", ""),
                  "ratio": r.get("cymr_over_superpose", {}).get("median", "")} for r in rows])
    print("wrote", write_results("recall-variants", rows, {
        "data": "Morton2013 subject 1 (48 lists of 24)", "sets": SETS, "calls": args.calls, "rounds": args.rounds}))


if __name__ == "__main__":
    main()

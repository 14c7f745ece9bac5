"""A plain, unvectorised NumPy CMR written from the equations, as an independent check.

Full matrices, explicit outer-product learning (instance memory: an explicit list of traces) and
Python loops over lists and events; nothing is shared with superpose.recall. One function,
:func:`variant_list_log_likelihood`, holds every term; the base model is it without the added ones.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp


def _smooth_cap(p_stop: float, ceiling: float = 1 - 1e-6, k: float = 20.0) -> float:
    """The model's soft minimum of p and the ceiling, (p^−k + C^−k)^(−1/k), evaluated in log space."""
    return math.exp(-np.logaddexp(-k * math.log(p_stop), -k * math.log(ceiling)) / k)


def _drift(c, c_in, beta):
    dot = float(c @ c_in)
    rho = math.sqrt(1 + beta**2 * (dot**2 - 1)) - beta * dot
    return rho * c + beta * c_in


def _read_out(context, traces, kappa: float, n: int):
    """Instance memory's activations Σ_t (context·c_t)^κ v_t over an explicit list of traces (c_t, v_t)."""
    a = np.zeros(n)
    for trace_context, vector in traces:
        s = float(context @ trace_context)
        if s > 0:
            a += s**kappa * vector
    return a


def list_log_likelihood(p: dict, list_length: int, recalls: list[int]) -> float:
    """log P(recall sequence, then stop) under the base model; ``recalls`` are 1-indexed study positions.

    The base model is :func:`variant_list_log_likelihood` without its added terms (linear M^CF, no semantic
    associations, no category sublayer).
    """
    return variant_list_log_likelihood(p, list_length, recalls)


def dataset_log_likelihood(p: dict, dataset) -> float:
    """Sum over lists of the clean (correct-recall) sequences."""
    clean = dataset.clean_recalls()
    return sum(list_log_likelihood(p, int(dataset.list_length[r]), [int(x) for x in clean[r] if x > 0])
               for r in range(dataset.n_lists))


def variant_list_log_likelihood(p: dict, list_length: int, recalls: list[int], similarity=None,
                                trace_sensitivity: float | None = None, categories=None,
                                n_categories: int = 0) -> float:
    """log P(recall sequence, then stop) under CMR or one of the variants of :mod:`superpose.recall.variants`.

    ``similarity``: ``(n, n)`` S between the list's items in study order (the semantic term
    ``p["semantic_scale"]``·S[k, j] joins pre-experimental M^CF on unit k + 1, item j).
    ``trace_sensitivity``: None for the linear M^CF (a matrix, learned by outer products); κ for instance
    memory, where M^CF is a list of traces (context, item vector) and a_j = Σ_t (c·c_t)^κ v_t[j].
    ``categories``: the category (1..n_categories) of each position, for the category sublayer (its own
    context, M^FC and M^CF, cue weight ``p["category_weight"]``, drift ``p["category_drift_rate"]``). With
    ``trace_sensitivity`` too, the category sublayer's M^CF is a list of traces of its own as well (one per
    category unit: that unit's pre-experimental row; one per study event: (c^cat_i, γ_CF φ_i f_i)), read out
    with the same κ and added with the cue weight.
    With all three None this is the base model.
    """
    n = list_length
    units = n + 1
    mfc = np.zeros((n, units))
    for i in range(n):
        mfc[i, i + 1] = 1 - p["mfc_learning_rate"]
    pre = np.zeros((units, n))
    for u in range(1, units):
        for j in range(n):
            pre[u, j] = p["item_support"] if u - 1 == j else p["shared_support"]
            if similarity is not None and u - 1 != j:
                pre[u, j] += p["semantic_scale"] * similarity[u - 1][j]
    mcf = pre.copy()                                               # linear memory
    traces = [(np.eye(units)[u], pre[u].copy()) for u in range(units)]   # instance memory
    # category sublayer (categories: 1..C per position): its own context, M^FC and M^CF
    k_units = n_categories + 1
    fc_cat = np.zeros((n, k_units))
    cf_cat = np.zeros((k_units, n))
    cat_traces = []                                                # instance memory of the category sublayer
    if categories is not None:
        for i in range(n):
            fc_cat[i, categories[i]] = 1 - p["mfc_learning_rate"]
            cf_cat[categories[i], i] = 1.0
        cat_traces = [(np.eye(k_units)[g], cf_cat[g].copy()) for g in range(k_units)]
    c_cat = np.eye(k_units)[0]
    c = np.eye(units)[0]
    for i in range(n):
        f = np.eye(n)[i]
        c_in = f @ mfc
        c_in = c_in / np.linalg.norm(c_in) if np.linalg.norm(c_in) > 0 else np.eye(units)[i + 1]
        c = _drift(c, c_in, p["encoding_drift_rate"])
        mfc += p["mfc_learning_rate"] * np.outer(f, c)
        phi = p["primacy_scale"] * math.exp(-p["primacy_decay"] * i) + 1
        mcf += p["mcf_learning_rate"] * phi * np.outer(c, f)
        traces.append((c.copy(), p["mcf_learning_rate"] * phi * f))
        if categories is not None:
            c_cat = _drift(c_cat, np.eye(k_units)[categories[i]], p["category_drift_rate"])
            fc_cat[i] += p["mfc_learning_rate"] * c_cat
            cf_cat[:, i] += p["mcf_learning_rate"] * phi * c_cat
            cat_traces.append((c_cat.copy(), p["mcf_learning_rate"] * phi * f))

    def activation(context, context_cat):
        if trace_sensitivity is None:
            a = context @ mcf
        else:
            a = _read_out(context, traces, trace_sensitivity, n)
        if categories is not None and trace_sensitivity is None:
            a += p["category_weight"] * (context_cat @ cf_cat)
        elif categories is not None:
            a += p["category_weight"] * _read_out(context_cat, cat_traces, trace_sensitivity, n)
        return a

    c = _drift(c, np.eye(units)[0], p["start_drift_rate"])
    c_cat = _drift(c_cat, np.eye(k_units)[0], p["start_drift_rate"])
    total = 0.0
    recalled: list[int] = []
    for k in range(len(recalls) + 1):
        left = n - len(recalled)
        p_stop = 1.0 if left == 0 else _smooth_cap(p["stop_probability_scale"] * math.exp(p["stop_probability_growth"] * k))
        if k == len(recalls):
            total += math.log(p_stop)
            break
        item = recalls[k] - 1
        a = activation(c, c_cat)
        available = [j for j in range(n) if j not in recalled]
        log_terms = [p["choice_sensitivity"] * math.log(a[j]) for j in available]
        total += math.log(1 - p_stop) + p["choice_sensitivity"] * math.log(a[item]) - logsumexp(log_terms)
        recalled.append(item)
        c = _drift(c, mfc[item] / np.linalg.norm(mfc[item]), p["recall_drift_rate"])
        if categories is not None:
            c_cat = _drift(c_cat, fc_cat[item] / np.linalg.norm(fc_cat[item]), p["category_drift_rate"])
    return total

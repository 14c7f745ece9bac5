"""A plain, unvectorised NumPy CMR written from the equations, as an independent check.

Full matrices, explicit outer-product learning and Python loops over lists and events;
nothing is shared with superpose.recall.model.
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


def list_log_likelihood(p: dict, list_length: int, recalls: list[int]) -> float:
    """log P(recall sequence, then stop); ``recalls`` are 1-indexed study positions."""
    n = list_length
    units = n + 1
    mfc = np.zeros((n, units))
    for i in range(n):
        mfc[i, i + 1] = 1 - p["mfc_learning_rate"]
    mcf = np.zeros((units, n))
    mcf[1:, :] = p["shared_support"]
    for i in range(n):
        mcf[i + 1, i] = p["item_support"]
    c = np.zeros(units)
    c[0] = 1.0
    for i in range(n):
        f = np.zeros(n)
        f[i] = 1.0
        c_in = f @ mfc
        c_in = c_in / np.linalg.norm(c_in) if np.linalg.norm(c_in) > 0 else np.eye(units)[i + 1]
        c = _drift(c, c_in, p["encoding_drift_rate"])
        mfc += p["mfc_learning_rate"] * np.outer(f, c)
        phi = p["primacy_scale"] * math.exp(-p["primacy_decay"] * i) + 1
        mcf += p["mcf_learning_rate"] * phi * np.outer(c, f)
    start = np.zeros(units)
    start[0] = 1.0
    c = _drift(c, start, p["start_drift_rate"])
    total = 0.0
    recalled: list[int] = []
    for k in range(len(recalls) + 1):
        left = n - len(recalled)
        p_stop = 1.0 if left == 0 else _smooth_cap(p["stop_probability_scale"] * math.exp(p["stop_probability_growth"] * k))
        if k == len(recalls):
            total += math.log(p_stop)
            break
        item = recalls[k] - 1
        a = c @ mcf
        available = [j for j in range(n) if j not in recalled]
        log_terms = [p["choice_sensitivity"] * math.log(a[j]) for j in available]
        total += math.log(1 - p_stop) + p["choice_sensitivity"] * math.log(a[item]) - logsumexp(log_terms)
        recalled.append(item)
        f = np.zeros(n)
        f[item] = 1.0
        c_in = f @ mfc
        c = _drift(c, c_in / np.linalg.norm(c_in), p["recall_drift_rate"])
    return total


def dataset_log_likelihood(p: dict, dataset) -> float:
    """Sum over lists of the clean (correct-recall) sequences."""
    clean = dataset.clean_recalls()
    return sum(list_log_likelihood(p, int(dataset.list_length[r]), [int(x) for x in clean[r] if x > 0])
               for r in range(dataset.n_lists))

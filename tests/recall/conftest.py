import numpy as np
import pytest

from superpose.recall import make_parameters


def random_parameters(rng: np.random.Generator, **overrides) -> dict:
    """Parameters drawn inside the ranges fits reach (supports > 0 so every log is finite)."""
    values = {
        "encoding_drift_rate": rng.uniform(0.05, 0.95), "start_drift_rate": rng.uniform(0.01, 0.9),
        "recall_drift_rate": rng.uniform(0.05, 0.95), "mfc_learning_rate": rng.uniform(0.0, 0.95),
        "mcf_learning_rate": rng.uniform(0.1, 1.0), "shared_support": rng.uniform(0.01, 10),
        "item_support": rng.uniform(0.01, 10), "primacy_scale": rng.uniform(0, 20),
        "primacy_decay": rng.uniform(0, 5), "stop_probability_scale": rng.uniform(0.001, 0.2),
        "stop_probability_growth": rng.uniform(0.01, 1.0), "choice_sensitivity": rng.uniform(0.5, 100),
    }
    values.update(overrides)
    return values


@pytest.fixture
def fitted_like() -> dict:
    """Parameters of the size fits to Morton2013 reach (subject 1, τ near 50 before polishing)."""
    return {
        "encoding_drift_rate": 0.767, "start_drift_rate": 0.0211, "recall_drift_rate": 0.748,
        "mfc_learning_rate": 0.144, "mcf_learning_rate": 1.0, "shared_support": 51.0, "item_support": 83.7,
        "primacy_scale": 35.4, "primacy_decay": 80.3, "stop_probability_scale": 0.00456,
        "stop_probability_growth": 0.296, "choice_sensitivity": 47.9,
    }


__all__ = ["make_parameters", "random_parameters"]

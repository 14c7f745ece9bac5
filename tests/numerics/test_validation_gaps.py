"""Issue 15 validation gaps in superpose.numerics: out-of-range choice indices."""

import jax
import numpy as np
import pytest

from superpose.numerics import log_choice_probability_of


def _rows():
    values = np.array([[0.5, 2.0, 1.0, 0.25], [1.0, 1.0, 3.0, 0.5]])
    mask = np.zeros((2, 4), bool)
    return values, mask


def test_out_of_range_index_is_refused_and_an_in_range_one_follows_the_luce_rule():
    values, mask = _rows()
    for index in ([4, 0], [0, -1], [7, 9]):
        with pytest.raises(ValueError, match=r"index must lie in \[0, 4\)"):
            log_choice_probability_of(values, mask, 2.0, np.array(index))
    tau, index = 2.0, np.array([3, 2])
    got = np.asarray(log_choice_probability_of(values, mask, tau, index))
    powered = values**tau  # independent truth: p_i = a_i^τ / Σ_j a_j^τ
    np.testing.assert_allclose(got, np.log(powered[np.arange(2), index] / powered.sum(1)), rtol=1e-5)
    # a traced index is not checked (documented) but an in-range one still gives the same answer
    traced = jax.jit(lambda i: log_choice_probability_of(values, mask, tau, i))(index)
    np.testing.assert_allclose(np.asarray(traced), got, rtol=1e-6)

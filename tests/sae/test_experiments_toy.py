"""``sae-toy`` runs end to end in quick mode and reports recovery and absorption."""

from __future__ import annotations

import json

import pytest

from superpose.runner import get_experiment, run_experiment


def run(tmp_path, name, **overrides):
    record = run_experiment(name, overrides, tmp_path / name, quick=True)
    assert record.status == "finished", record
    meta = json.loads((tmp_path / name / "run.json").read_text())
    return record.metrics, meta


def test_sae_toy_reports_recovery_and_absorption(tmp_path):
    metrics, meta = run(tmp_path, "sae-toy")
    assert {f["kind"] for f in meta["figures"]} == {"png", "html"}
    settings, kinds = ("independent", "hierarchical"), ("topk", "relu")
    for field in ("mmcs", "absorption_fraction", "parent_silent_when_both_active", "child_latent_parent_cosine",
                  "fvu", "l0", "dead_latents"):
        assert set(metrics[field]) == set(settings), field
        for setting in settings:
            assert set(metrics[field][setting]) == set(kinds), (field, setting)
    for setting in settings:
        assert metrics["represented_features"][setting] == metrics["features"] == 20
        for kind in kinds:
            # quick mode, seed 0 measured: MMCS 0.96–1.00, absorption 0.8–2.2 % (control), 9–31 % (hierarchy)
            assert 0.85 <= metrics["mmcs"][setting][kind] <= 1.0
            assert 0.0 <= metrics["absorption_fraction"][setting][kind] <= 1.0
            assert 0.0 <= metrics["fvu"][setting][kind] < 0.3
    for kind in kinds:
        hierarchical = metrics["absorption_fraction"]["hierarchical"][kind]
        control = metrics["absorption_fraction"]["independent"][kind]
        assert hierarchical > control + 0.03, (kind, hierarchical, control)
        cosine = metrics["child_latent_parent_cosine"]
        assert cosine["hierarchical"][kind] > cosine["independent"][kind] + 0.05
    assert len(metrics["per_pair"]["hierarchical"]["topk"]) == 4 * 2
    note = " ".join(meta["notes"])
    assert f"{metrics['mmcs']['independent']['topk']:.3f}" in note  # the note quotes the run's numbers


def test_sae_toy_config_is_checked():
    with pytest.raises(ValueError, match="smaller than the number of features"):
        get_experiment("sae-toy").make_config({"hidden": "20"})
    with pytest.raises(ValueError, match="at most the number of SAE latents"):
        get_experiment("sae-toy").make_config({"k": "21"})
    with pytest.raises(ValueError, match="kinds"):
        get_experiment("sae-toy").make_config({"kinds": "topk,gated"})


def test_sae_circles_page_reports_the_fit_and_its_baselines(tmp_path):
    """A small sae-circles run: its metrics hold what the page promises, and the note quotes them."""
    from superpose.sae import ManifoldSAE

    metrics, meta = run(tmp_path, "sae-circles", rows=240, dimensions=8, harmonics=1, restarts=1, linear_steps=200)
    assert {f["file"] for f in meta["figures"]} == {"circles.png", "reconstruction.png"}
    assert metrics["reconstruction_r2"] >= 0.95 and metrics["heldout_r2"] >= 0.9
    # one start on 240 rows (the recovery thresholds of the default settings are in test_model.py):
    # measured overlap 0.9994, circular R² 0.864 and 0.999; bounds leave a margin
    assert min(metrics["plane_overlap"]) >= 0.98 and min(metrics["circular_r2"]) >= 0.8
    assert sorted(metrics["atom_of_circle"]) == [0, 1]
    assert set(metrics["baselines_r2"]) == {"pca_rank_2", "pca_rank_4", "linear_topk"}
    assert f"{metrics['heldout_r2']:.3f}" in " ".join(meta["notes"])
    model = ManifoldSAE.load(tmp_path / "sae-circles" / "model.npz")
    assert model.num_atoms == 2 and model.output_size == 8


def test_sae_sweep_reports_every_cell_and_resumes(tmp_path):
    """One small cell (H = 1, one start): the metrics hold what the page promises, the cell recovers
    its circle with the criterion preferring it to the collapse, and a rerun reuses the cell."""
    overrides = dict(rows=(40,), dimensions=(4,), harmonics=1, restarts=1, evaluations=30)
    metrics, meta = run(tmp_path, "sae-sweep", **overrides)
    assert {f["file"] for f in meta["figures"]} == {"sweep.png"}
    assert metrics["cells"] == 1 and set(metrics["circular_r2"]) == {"n=40+p=4"}
    assert metrics["min_circular_r2"] >= 0.9 and metrics["collapsed_cells"] == 0
    assert metrics["criterion_prefers_fit_cells"] == 1
    assert all(len(flat) == 3 for flat in metrics["selected"].values())
    assert f"{metrics['min_circular_r2']:.3f}" in " ".join(meta["notes"])
    again = run_experiment("sae-sweep", overrides, tmp_path / "sae-sweep", quick=True, resume=True)
    assert again.metrics["circular_r2"] == metrics["circular_r2"]


@pytest.mark.slow  # 36 s on the 2-core Xeon: the default run's budget (issue 16's tests took its room)
def test_sae_superposed_reports_every_circle_and_the_baselines(tmp_path):
    """A small superposed design (3 circles in R^4, 1 or 2 per row; 16 s on 2 cores): the metrics the page
    promises. (Too small to recover its circles: the page's recovery is measured in docs/sae.md.)"""
    metrics, meta = run(tmp_path, "sae-superposed", rows=300, dimensions=4, circles=3, evaluations=8,
                        linear_steps=200)
    assert {f["file"] for f in meta["figures"]} == {"circles.png", "reconstruction.png"}
    for field in ("min_circular_r2", "min_plane_overlap", "heldout_ev", "heldout_ev_pca", "heldout_ev_linear",
                  "heldout_ev_pca_full_rank", "seconds"):
        assert isinstance(metrics[field], float), field
    assert len(metrics["circular_r2"]) == len(metrics["plane_overlap"]) == 3
    assert sorted(metrics["atom_of_circle"]) == [0, 1, 2]
    assert metrics["min_plane_overlap"] == min(metrics["plane_overlap"])
    assert abs(metrics["heldout_ev_pca_full_rank"] - 1.0) < 1e-9  # full-rank PCA is the identity
    assert metrics["selection_evaluations"] <= 8
    assert f"{metrics['min_circular_r2']:.3f}" in " ".join(meta["notes"])


def test_sae_superposed_config_is_checked():
    with pytest.raises(ValueError, match="must exceed dimensions/2"):
        get_experiment("sae-superposed").make_config({"circles": "6"})

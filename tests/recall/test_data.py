import numpy as np
import pandas as pd
import pytest

from superpose.recall import (
    RecallDataset,
    from_events,
    load_sample,
    psifr_available,
    read_csv,
    read_hdf5,
    to_events,
    write_csv,
    write_hdf5,
)

needs_psifr = pytest.mark.skipif(not psifr_available(), reason="psifr (the 'recall' extra) is not installed")


def small() -> RecallDataset:
    return RecallDataset(
        subject=[1, 1, 2], list_length=[3, 3, 2],
        presented=[[10, 11, 12], [13, 14, 15], [16, 17, 0]],
        recalls=[[3, 1, 3, -1, 2], [2, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
        recalled_items=[[12, 10, 12, 99, 11], [14, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
        words=tuple(f"w{i}" for i in range(1, 100)),
        conditions={"list_type": np.array(["pure", "mixed", "pure"])},
    )


def test_flags_intrusions_and_repeats_without_dropping_them():
    ds = small()
    np.testing.assert_array_equal(ds.intrusions[0], [False, False, False, True, False])
    np.testing.assert_array_equal(ds.repeats[0], [False, False, True, False, False])
    np.testing.assert_array_equal(ds.clean_recalls()[0], [3, 1, 2])
    assert ds.summary() == {"lists": 3, "subjects": 2, "list_lengths": [2, 3], "correct_recalls": 4,
                            "intrusions": 1, "repeats": 1}


@pytest.mark.parametrize("change, message", [
    ({"recalls": [[4, 0], [0, 0], [0, 0]]}, r"row 0 \(subject 1, list 1\): recall position 4 points outside"),
    ({"recalls": [[1, 0], [0, 2], [0, 0]]}, r"row 1 \(subject 1, list 2\): recalls must be padded with trailing"),
    ({"list_length": [3, 4, 2]}, r"row 1 .*list_length 4 must be in 1..3"),
    ({"presented": [[1, 2, 3], [4, 0, 6], [7, 8, 0]]}, r"row 1 .*presented item numbers must be >= 1"),
    ({"presented": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]}, r"row 2 .*presented must be 0 after list_length 2"),
    ({"subject": [1, 1]}, r"list_length has 3 rows but subject has 2"),
    ({"recalls": [[1.5, 0], [0, 0], [0, 0]]}, r"recalls must hold whole numbers"),
])
def test_malformed_data_names_the_row(change, message):
    base = {"subject": [1, 1, 2], "list_length": [3, 3, 2], "presented": [[1, 2, 3], [4, 5, 6], [7, 8, 0]],
            "recalls": [[1, 0], [0, 0], [0, 0]]}
    with pytest.raises(ValueError, match=message):
        RecallDataset(**{**base, **change})


def test_recalled_items_must_agree_with_positions():
    with pytest.raises(ValueError, match="recalled_items disagree"):
        RecallDataset(subject=[1], list_length=[2], presented=[[5, 6]], recalls=[[1]], recalled_items=[[6]])


def test_event_table_round_trip_keeps_everything():
    ds = small()
    back = from_events(to_events(ds), conditions=["list_type"])
    for name in ("subject", "list_length", "presented", "recalls", "recalled_items", "list_number"):
        got, want = getattr(back, name), getattr(ds, name)
        np.testing.assert_array_equal(got, want if want.ndim == 1 else want[:, : got.shape[1]])
    np.testing.assert_array_equal(back.conditions["list_type"], ds.conditions["list_type"])
    assert back.words[11] == "w12"


def test_csv_round_trip_and_no_silent_overwrite(tmp_path):
    ds = small()
    path = write_csv(ds, tmp_path / "data.csv")
    np.testing.assert_array_equal(read_csv(path).recalls, ds.recalls)
    with pytest.raises(FileExistsError):
        write_csv(ds, path)
    write_csv(ds, path, overwrite=True)
    (tmp_path / "bad.csv").write_text("subject,list\n1,2\n")
    with pytest.raises(ValueError, match="lack the columns"):
        read_csv(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="no such CSV file"):
        read_csv(tmp_path / "missing.csv")


def test_hdf5_round_trip_in_the_jaxcmr_layout(tmp_path):
    import h5py

    ds = small()
    path = write_hdf5(ds, tmp_path / "data.h5")
    with h5py.File(path) as f:
        assert f["data/pres_itemnos"].shape == (3, 3)  # stored transposed: (N, L)
        assert f["data/listLength"].shape == (1, 3)
    back = read_hdf5(path)
    for name in ("subject", "list_length", "presented", "recalls", "recalled_items", "list_number"):
        np.testing.assert_array_equal(getattr(back, name), getattr(ds, name))
    with pytest.raises(FileExistsError):
        write_hdf5(ds, path)
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f.create_group("data").create_dataset("subject", data=np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"/data lacks \['listLength', 'pres_itemnos', 'recalls'\]"):
        read_hdf5(tmp_path / "bad.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        read_hdf5(tmp_path / "junk.h5")


def test_event_tables_with_bad_content_are_refused():
    events = to_events(small())
    with pytest.raises(ValueError, match="trial_type must be 'study' or 'recall'"):
        from_events(events.assign(trial_type="test"))
    twice = events.copy()
    twice.loc[1, "position"] = 1
    with pytest.raises(ValueError, match="study positions must be 1..n once each"):
        from_events(twice)
    with pytest.raises(TypeError, match="DataFrame"):
        from_events(events.to_dict())


@needs_psifr
def test_morton2013_loads_with_the_published_counts():
    ds = load_sample("Morton2013")
    assert ds.n_lists == 1920 and ds.subjects.size == 40 and set(ds.list_length) == {24}
    one = ds.select(subjects=[1])
    assert one.n_lists == 48 and one.correct.sum() == 587  # the 587 recalls the benchmark quotes
    assert set(ds.conditions) == {"list_type", "list_category", "session"}
    peers = load_sample("peers_notask")
    assert peers.subjects.size == 126 and set(peers.list_length) == {16}
    with pytest.raises(ValueError, match="unknown sample"):
        load_sample("Murdock1962")


def test_missing_psifr_says_what_to_install(monkeypatch):
    import builtins

    from superpose.recall import samples

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("psifr"):
            raise ImportError("no psifr")
        return real_import(name, *args, **kwargs)

    samples.load_sample.cache_clear()
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"pip install 'superpose\[recall\]'"):
        samples.load_sample("Morton2013")
    samples.load_sample.cache_clear()

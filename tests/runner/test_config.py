"""Typed configs: parsing of --set overrides, type and range checks, clear messages."""

from __future__ import annotations

import dataclasses

import pytest

from superpose.runner import ExperimentConfig, param, parse_overrides
from superpose.runner.config import config_differences


@dataclasses.dataclass(frozen=True)
class DemoConfig(ExperimentConfig):
    steps: int = param(10, "training steps", low=1, high=1000)
    rate: float = param(0.1, "learning rate", low=0)
    subjects: tuple[int, ...] = param((1, 2, 3), "subject ids", low=1)
    mode: str = param("sum", "loss reduction", choices=("sum", "mean"))
    verbose: bool = param(False, "print more")


def test_defaults_and_round_trip():
    config = DemoConfig()
    assert config.to_dict() == {"seed": 0, "steps": 10, "rate": 0.1, "subjects": [1, 2, 3], "mode": "sum",
                                 "verbose": False}
    assert DemoConfig.from_dict(config.to_dict()) == config


def test_overrides_are_parsed_by_type():
    config = DemoConfig().with_overrides(
        parse_overrides(["steps=20", "rate=1e-3", "subjects=4,5", "mode=mean", "verbose=yes"])
    )
    assert (config.steps, config.rate, config.subjects, config.mode, config.verbose) == (20, 1e-3, (4, 5), "mean", True)


@pytest.mark.parametrize(
    "pair, message",
    [
        ("stepz=3", "unknown config key 'stepz'; valid keys:\n  seed"),
        ("steps=0", r"steps must be int in \[1, 1000\], got 0"),
        ("steps=2.5", "steps must be an integer"),
        ("rate=fast", "rate must be a number"),
        ("rate=nan", "rate must be finite"),
        ("subjects=1,0", r"subjects must be comma-separated ints in \[1, inf\], got 0"),
        ("mode=median", r"mode must be one of \['sum', 'mean'\]"),
        ("verbose=maybe", "verbose must be true or false"),
    ],
)
def test_bad_overrides_name_the_problem(pair, message):
    with pytest.raises(ValueError, match=message):
        DemoConfig().with_overrides(parse_overrides([pair]))


def test_unknown_key_message_lists_every_valid_key():
    with pytest.raises(ValueError) as info:
        DemoConfig().with_overrides({"nope": 1})
    for key in ("seed", "steps", "rate", "subjects", "mode", "verbose"):
        assert f"  {key} (" in str(info.value)


def test_malformed_pairs():
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["steps"])
    with pytest.raises(ValueError, match="set twice"):
        parse_overrides(["steps=1", "steps=2"])


def test_unsupported_field_type_is_rejected():
    @dataclasses.dataclass(frozen=True)
    class Bad(ExperimentConfig):
        table: list = param(None, "not a supported type")

    with pytest.raises(TypeError, match="config fields must be"):
        Bad()


def test_config_differences():
    assert config_differences({"a": 1, "b": 2}, {"a": 1, "b": 3}) == ["b: 2 -> 3"]

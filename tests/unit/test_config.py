"""The shared YAML + pydantic loader: one line naming the file, the field and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from driftwarden.config import load_yaml_model, parse_model, parse_yaml_model
from driftwarden.errors import ConfigError, DriftwardenError, SpecError


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    weight: float = Field(gt=0)


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cooldown_s: float = Field(default=60.0, gt=0)
    items: list[Item] = Field(default_factory=list)


class PolicyError(ConfigError):
    pass


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_valid_file_gives_the_model(tmp_path: Path) -> None:
    p = _write(tmp_path, "cooldown_s: 5\nitems:\n  - {name: a, weight: 2}\n")
    policy = load_yaml_model(p, Policy, what="policy")
    assert policy == Policy(cooldown_s=5, items=[Item(name="a", weight=2)])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cooldown_s: -1\n", "policy.yaml: cooldown_s: Input should be greater than 0"),
        (
            "items:\n  - {name: a, weight: 1}\n  - {name: heavy, weight: 0}\n",
            "policy.yaml: items[1] (heavy).weight: Input should be greater than 0",
        ),
        ("cooldwn_s: 1\ncooldown_s: x\n", "policy.yaml: cooldwn_s: Extra inputs are not permitted"),
        ("- a\n- b\n", "policy.yaml: expected a mapping at the top level, got list"),
        ("", "policy.yaml: expected a mapping at the top level, got NoneType"),
        ("a: [unclosed\n", "policy.yaml: invalid YAML at line 2, column 1"),
    ],
)
def test_bad_file_is_one_line_naming_file_field_and_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_yaml_model(p, Policy, what="policy")
    line = str(info.value)
    assert message in line
    assert str(p) in line
    assert "\n" not in line


def test_missing_file_names_what_it_is(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such policy file"):
        load_yaml_model(tmp_path / "nope.yaml", Policy, what="policy")
    with pytest.raises(ConfigError, match="is a directory, not a policy file"):
        load_yaml_model(tmp_path, Policy, what="policy")


def test_caller_chooses_the_error_class_and_prefix(tmp_path: Path) -> None:
    p = _write(tmp_path, "cooldown_s: 0\n")
    with pytest.raises(PolicyError, match=r"^--policy x: cooldown_s: ") as info:
        load_yaml_model(p, Policy, "policy", source="--policy x", error=PolicyError)
    assert isinstance(info.value, DriftwardenError)
    assert info.value.__cause__ is not None


def test_empty_document_is_all_defaults_when_allowed(tmp_path: Path) -> None:
    assert load_yaml_model(_write(tmp_path, ""), Policy, allow_empty=True) == Policy()
    assert parse_model(None, Policy, allow_empty=True) == Policy()


def test_text_and_mapping_variants_report_the_same_way() -> None:
    assert parse_yaml_model("cooldown_s: 2\n", Policy).cooldown_s == 2
    with pytest.raises(ConfigError, match=r"^inline: items\[0\] \(z\)\.weight: "):
        parse_yaml_model("items: [{name: z, weight: -3}]\n", Policy, source="inline")
    with pytest.raises(ConfigError, match=r"and 1 more problem"):
        parse_model({"cooldown_s": 0, "items": [{"name": "a", "weight": 0}]}, Policy)


def test_spec_errors_are_config_errors() -> None:
    assert issubclass(SpecError, ConfigError)

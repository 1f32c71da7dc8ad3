"""The trainer's artifact folder (DESIGN.md: `model.pt`, the spec, `metrics.json`), I/O.

    model.pt      the module's state dict (torch.save; loaded with weights_only=True)
    model.json    what rebuilds the module and its encoders: architecture, feature means and
                  standard deviations, category vocabularies, label classes, model name/version
    spec.yaml     the model's monitoring spec (its `version` set to the new version)
    metrics.json  data hash and rows, epochs, device, duration, holdout metrics of the new
                  model, the current one and the baseline, and the gate's verdict

Every file is written to a temporary name and renamed, and `metrics.json` last, so a reader
that sees `metrics.json` with `"gate": {"passed": true}` sees a complete artifact. A model
that fails the gate gets only `metrics.json` (the explanation) and no `model.pt`: nothing can
serve it by mistake.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import torch

from driftwarden.errors import DriftwardenError, SpecError
from driftwarden.spec import ModelSpec, dump_spec, parse_spec
from retrain_trigger.train.encoding import FeatureEncoder, LabelEncoder
from retrain_trigger.train.model import Architecture, Predictor, TabularMLP

__all__ = [
    "MANIFEST_SCHEMA",
    "Artifact",
    "ArtifactError",
    "load_artifact",
    "write_artifact",
    "write_metrics",
]

MANIFEST_SCHEMA: Final = "driftwarden.trainer.model/v1"
METRICS_SCHEMA: Final = "driftwarden.trainer.metrics/v1"


class ArtifactError(DriftwardenError):
    """An artifact folder that is missing, incomplete or unreadable."""


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=2, allow_nan=False) + "\n").encode()


def clean_floats(data: Any) -> Any:
    """NaN/inf -> None, recursively (metrics.json is strict JSON)."""
    if isinstance(data, float):
        return data if data == data and abs(data) != float("inf") else None
    if isinstance(data, Mapping):
        return {k: clean_floats(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [clean_floats(v) for v in data]
    return data


def write_metrics(out: Path, metrics: Mapping[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / "metrics.json", _json(clean_floats({"schema": METRICS_SCHEMA, **metrics})))


def write_artifact(
    out: Path,
    *,
    module: TabularMLP,
    arch: Architecture,
    features: FeatureEncoder,
    labels: LabelEncoder,
    spec: ModelSpec,
    version: str | None,
    metrics: Mapping[str, Any],
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".model.pt.tmp-{os.getpid()}"
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    torch.save(state, tmp)
    os.replace(tmp, out / "model.pt")
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "model": spec.model,
        "version": version,
        "architecture": arch.to_dict(),
        "features": features.to_dict(),
        "labels": labels.to_dict(),
    }
    _write_atomic(out / "model.json", _json(manifest))
    spec_out = spec.model_copy(update={"version": version}) if version else spec
    _write_atomic(out / "spec.yaml", dump_spec(spec_out).encode())
    write_metrics(out, metrics)


@dataclass(frozen=True)
class Artifact:
    path: Path
    model: str
    version: str | None
    spec: ModelSpec
    predictor: Predictor
    metrics: dict[str, Any]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ArtifactError(f"{path}: missing (is this a trainer artifact folder?)") from e
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{path}: cannot read ({e})") from e
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object")
    return data


def load_artifact(path: str | Path, device: str | torch.device = "cpu") -> Artifact:
    """Rebuild the predictor of an artifact folder; every failure is one `ArtifactError` line."""
    root = Path(path)
    if not root.is_dir():
        raise ArtifactError(f"{root}: no such artifact folder")
    manifest = _read_json(root / "model.json")
    if manifest.get("schema") != MANIFEST_SCHEMA:
        raise ArtifactError(f"{root / 'model.json'}: schema is not {MANIFEST_SCHEMA!r}")
    try:
        arch = Architecture.from_dict(manifest["architecture"])
        features = FeatureEncoder.from_dict(manifest["features"])
        labels = LabelEncoder.from_dict(manifest["labels"])
    except (KeyError, TypeError, ValueError) as e:
        raise ArtifactError(f"{root / 'model.json'}: malformed ({type(e).__name__}: {e})") from e
    try:
        import yaml

        spec = parse_spec(
            yaml.safe_load((root / "spec.yaml").read_text(encoding="utf-8")),
            source=str(root / "spec.yaml"),
        )
    except (OSError, yaml.YAMLError) as e:
        raise ArtifactError(f"{root / 'spec.yaml'}: cannot read ({e})") from e
    except SpecError as e:
        raise ArtifactError(str(e)) from e
    module = TabularMLP(arch)
    try:
        state = torch.load(root / "model.pt", map_location="cpu", weights_only=True)
        module.load_state_dict(state)
    except FileNotFoundError as e:
        raise ArtifactError(
            f"{root / 'model.pt'}: missing (a model that failed the gate has no model.pt)"
        ) from e
    except (RuntimeError, OSError, ValueError) as e:
        raise ArtifactError(f"{root / 'model.pt'}: cannot load ({str(e).splitlines()[0]})") from e
    metrics_path = root / "metrics.json"
    metrics = _read_json(metrics_path) if metrics_path.exists() else {}
    return Artifact(
        path=root,
        model=str(manifest.get("model") or spec.model),
        version=manifest.get("version"),
        spec=spec,
        predictor=Predictor(module, features, labels, device),
        metrics=metrics,
    )

"""The reference trainer end to end on the CPU: `python -m retrain_trigger.train` on the
demo's credit data, a retrain on drifted data that beats the old model on drifted rows,
the gate's failure exit, and one-line user errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from retrain_trigger.train.artifact import ArtifactError, load_artifact
from retrain_trigger.train.trainer import holdout_metrics
from tests.kits.trainer import credit_frame, train_artifact, write_spec

FAST = ("--epochs", "15", "--patience", "3", "--batch-size", "256")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("trainer")
    paths = {
        "spec": write_spec(d / "credit.yaml"),
        "ref": d / "reference.parquet",
        "drifted": d / "drifted.csv",  # CSV as well as parquet
        "v1": d / "v1",
        "v2": d / "v2",
    }
    credit_frame(3_000, seed=11).to_parquet(paths["ref"])
    credit_frame(3_000, seed=12, drifted=True).to_csv(paths["drifted"], index=False)
    run = train_artifact(
        "--data",
        paths["ref"],
        "--spec",
        paths["spec"],
        "--out",
        paths["v1"],
        "--model-version",
        "v1",
        *FAST,
        in_process=False,  # the real `python -m` once
    )
    assert run.returncode == 0, run.stderr
    paths["v1_stdout"] = Path(d / "v1.stdout")
    paths["v1_stdout"].write_text(run.stdout)
    return paths


def test_artifact_folder_and_metrics(work: dict[str, Path]) -> None:
    files = sorted(p.name for p in work["v1"].iterdir())
    assert files == ["metrics.json", "model.json", "model.pt", "spec.yaml"]
    m = json.loads((work["v1"] / "metrics.json").read_text())
    assert m["model"] == "credit" and m["version"] == "v1"
    assert len(m["data"]["sha256"]) == 64 and m["data"]["rows"] == 3_000
    assert m["rows"]["train"] + m["rows"]["valid"] + m["rows"]["holdout"] == 3_000
    assert m["training"]["device"] == "cpu" and m["training"]["mixed_precision"] is None
    assert 1 <= m["training"]["best_epoch"] <= m["training"]["epochs_run"] <= 15
    assert m["training"]["duration_s"] > 0 and m["training"]["rows_per_s"] > 0
    assert m["holdout"]["current"] is None and m["gate"]["passed"] is True
    assert m["holdout"]["new"]["log_loss"] < m["holdout"]["baseline"]["log_loss"]
    # one progress line per epoch
    epochs = [ln for ln in work["v1_stdout"].read_text().splitlines() if ln.startswith("epoch=")]
    assert len(epochs) == m["training"]["epochs_run"]
    assert epochs[0].startswith("epoch=1/15 train_loss=")
    art = load_artifact(work["v1"])
    assert (art.model, art.version, art.spec.version) == ("credit", "v1", "v1")


def test_retrained_on_drifted_data_beats_the_old_model_on_drifted_rows(
    work: dict[str, Path],
) -> None:
    run = train_artifact(
        "--data",
        work["drifted"],
        "--spec",
        work["spec"],
        "--out",
        work["v2"],
        "--current-artifact",
        work["v1"],
        "--model-version",
        "v2",
        *FAST,
    )
    assert run.returncode == 0, run.stderr
    m = json.loads((work["v2"] / "metrics.json").read_text())
    new, cur = m["holdout"]["new"], m["holdout"]["current"]
    assert m["current_version"] == "v1" and m["gate"]["passed"] is True
    assert new["rows"] == cur["rows"] == m["rows"]["holdout"]  # the same holdout rows
    assert new["log_loss"] < cur["log_loss"] - 0.05
    # and on drifted rows neither model has seen
    fresh = credit_frame(2_000, seed=99, drifted=True)
    old_model, new_model = load_artifact(work["v1"]), load_artifact(work["v2"])
    old_m = holdout_metrics(old_model.predictor, fresh, fresh["target"])
    new_m = holdout_metrics(new_model.predictor, fresh, fresh["target"])
    assert new_m["log_loss"] < old_m["log_loss"] - 0.05
    assert new_m["roc_auc"] > old_m["roc_auc"] + 0.05


def test_gate_failure_exits_non_zero_with_one_line_and_no_model(
    work: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "bad"
    # v1's own population, one epoch at a negligible learning rate: an untrained model
    run = train_artifact(
        "--data",
        work["ref"],
        "--spec",
        work["spec"],
        "--out",
        out,
        "--current-artifact",
        work["v1"],
        "--epochs",
        "1",
        "--lr",
        "1e-7",
        "--gate-tolerance",
        "0",
    )
    assert run.returncode == 3, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gate failed: the new model's holdout log_loss")
    assert not (out / "model.pt").exists()
    m = json.loads((out / "metrics.json").read_text())
    assert m["gate"]["passed"] is False and m["gate"]["reason"] in lines[0]
    with pytest.raises(ArtifactError, match=r"model\.json: missing"):
        load_artifact(out)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--epochs", "0"), "argument --epochs: must be >= 1"),
        (("--device", "tpu"), "argument --device: invalid choice"),
        (("--label-column", "nope"), "--label-column: the data has no column 'nope'"),
        (("--current-artifact", "/nonexistent"), "/nonexistent: no such artifact folder"),
    ],
)
def test_user_errors_are_one_line_exit_2(
    work: dict[str, Path], tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    run = train_artifact(
        "--data", work["ref"], "--spec", work["spec"], "--out", tmp_path / "o", *args
    )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], run.stderr
    assert not (tmp_path / "o" / "model.pt").exists()


def test_missing_data_and_spec_files(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml")
    run = train_artifact("--data", tmp_path / "x.parquet", "--spec", spec, "--out", tmp_path / "o")
    assert (
        run.returncode == 2
        and run.stderr.strip() == f"error: {tmp_path / 'x.parquet'}: no such file"
    )
    run = train_artifact(
        "--data", tmp_path / "x.parquet", "--spec", tmp_path / "no.yaml", "--out", tmp_path / "o"
    )
    assert run.returncode == 2 and "no such spec file" in run.stderr


@pytest.mark.gpu
def test_cuda_training_uses_mixed_precision_and_matches_cpu_quality(tmp_path: Path) -> None:
    from driftwarden.spec import parse_spec
    from retrain_trigger.train.fit import FitSettings
    from retrain_trigger.train.trainer import TrainSettings, train
    from tests.kits.trainer import spec_document

    assert torch.cuda.is_available(), "the gpu-marked tests need a CUDA device"
    frame = credit_frame(20_000, seed=5, drifted=True)
    spec = parse_spec(spec_document())
    settings = TrainSettings(fit=FitSettings(epochs=10, patience=3, batch_size=1024))
    gpu = train(frame, spec, "target", settings, torch.device("cuda"))
    cpu = train(frame, spec, "target", settings, torch.device("cpu"))
    assert gpu.fit.device.startswith("cuda") and gpu.fit.mixed_precision in ("bfloat16", "float16")
    assert gpu.gate.passed
    assert abs(gpu.holdout["new"]["log_loss"] - cpu.holdout["new"]["log_loss"]) < 0.02
    assert np.isfinite(gpu.fit.best_valid_loss)


def _spec(target: dict[str, object], prediction: dict[str, object]) -> object:
    from driftwarden.spec import parse_spec

    return parse_spec(
        {
            "model": "toy",
            "features": [{"name": "x", "type": "numerical"}, {"name": "c", "type": "categorical"}],
            "target": {"column": "y", **target},
            "prediction": prediction,
        }
    )


def test_regression_and_multiclass_targets_train_gate_and_reduce() -> None:
    import pandas as pd

    from retrain_trigger.serve_protocol import OutputReducer
    from retrain_trigger.train.fit import FitSettings
    from retrain_trigger.train.model import Predictor
    from retrain_trigger.train.trainer import TrainSettings, train

    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, 1_500)
    c = rng.choice(["u", "v", "w"], 1_500)
    settings = TrainSettings(fit=FitSettings(epochs=25, patience=4, batch_size=128))
    cpu = torch.device("cpu")
    reg = pd.DataFrame({"x": x, "c": c, "y": 3 * x + (c == "v") * 2 + rng.normal(0, 0.1, 1_500)})
    spec = _spec({"type": "regression"}, {"type": "regression"})
    out = train(reg, spec, "y", settings, cpu)
    assert out.gate.passed and out.gate.metric == "rmse"
    assert out.holdout["new"]["rmse"] < 0.5 * out.holdout["baseline"]["rmse"]
    values = OutputReducer(spec, out.labels)(
        Predictor(out.fit.module, out.features, out.labels).predict({"x": [1.0], "c": ["v"]})
    )
    assert values[0] == pytest.approx(5.0, abs=0.7)

    cls = pd.DataFrame(
        {"x": x, "c": c, "y": np.where(x < -0.5, "low", np.where(x > 0.5, "high", "mid"))}
    )
    spec = _spec({"type": "class", "positive_label": "high"}, {"type": "class"})
    out = train(cls, spec, "y", settings, cpu)
    assert out.gate.passed and out.labels.classes == ["high", "low", "mid"]
    assert out.holdout["new"]["accuracy"] > 0.85
    labels = OutputReducer(spec, out.labels)(
        Predictor(out.fit.module, out.features, out.labels).predict({"x": [-2.0, 0.0, 2.0]})
    )
    assert labels == ["low", "mid", "high"]

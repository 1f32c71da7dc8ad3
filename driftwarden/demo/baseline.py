"""The demo's first model version: trained by `python -m retrain_trigger.train` on reference
rows, then the reference file the detectors compare with (features, v1's predictions, the true
outcome). Cached under `.cache/demo/` by what determines it, so later runs start at once."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from driftwarden.demo.cluster import EPOCH_LINE
from driftwarden.demo.data import MODEL, VERSION, spec_document, training_frame
from driftwarden.errors import DriftwardenError

#: Bump when the demo's data generator or ground truth changes (invalidates the cache).
DATA_REVISION = 2
DEFAULT_CACHE = Path(".cache") / "demo"


@dataclass(frozen=True)
class Baseline:
    artifact: Path  # v1's artifact folder (model.pt, model.json, spec.yaml, metrics.json)
    reference: Path  # reference.parquet: features, prediction (v1), target
    cached: bool
    holdout_accuracy: float | None


def _key(rows: int, seed: int, epochs: int) -> str:
    text = json.dumps({"rev": DATA_REVISION, "rows": rows, "seed": seed, "epochs": epochs})
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def prepare_baseline(
    cache_root: Path,
    *,
    rows: int = 20_000,
    seed: int = 7,
    epochs: int = 30,
    say: Callable[[str], None] = lambda _: None,
    log_path: Path | None = None,
) -> Baseline:
    folder = cache_root / f"{MODEL}-{VERSION}-{_key(rows, seed, epochs)}"
    artifact, reference = folder / "artifact", folder / "reference.parquet"
    if (artifact / "model.pt").is_file() and reference.is_file():
        return Baseline(artifact, reference, True, _holdout_accuracy(artifact))
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    frame = training_frame(rows, seed)
    frame.to_parquet(tmp / "train.parquet")
    (tmp / "spec.yaml").write_text(yaml.safe_dump(spec_document("reference.parquet", 500)))
    say(f"training {MODEL} {VERSION} on {rows:,} reference rows (cached after this run)")
    argv = [
        sys.executable,
        "-m",
        "retrain_trigger.train",
        "--data",
        str(tmp / "train.parquet"),
        "--spec",
        str(tmp / "spec.yaml"),
        "--out",
        str(tmp / "artifact"),
        "--model-version",
        VERSION,
        "--epochs",
        str(epochs),
        "--seed",
        str(seed),
    ]
    log = open(log_path or tmp / "train.log", "a")  # noqa: SIM115 - closed below
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            m = EPOCH_LINE.match(line)
            if m and (int(m.group(1)) % 5 == 0 or line.startswith("done")):
                say(f"  {VERSION} {line.strip()}")
        code = proc.wait()
    finally:
        log.close()
    if code != 0:
        raise DriftwardenError(f"training {VERSION} failed (exit {code}); see {log.name}")
    _write_reference(tmp / "artifact", frame, tmp / "reference.parquet")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return Baseline(artifact, reference, False, _holdout_accuracy(artifact))


def _write_reference(artifact: Path, frame, out: Path) -> None:  # frame: pandas.DataFrame
    from retrain_trigger.train.artifact import load_artifact

    predictor = load_artifact(artifact).predictor
    probs = predictor.predict(frame.drop(columns=["target"]))
    index = predictor.labels.positive_index
    ref = frame.copy()
    ref.insert(len(ref.columns) - 1, "prediction", probs[:, index].round(6))
    ref.to_parquet(out)


def _holdout_accuracy(artifact: Path) -> float | None:
    try:
        metrics = json.loads((artifact / "metrics.json").read_text())
        return float(metrics["holdout"]["new"]["accuracy"])
    except (OSError, ValueError, KeyError, TypeError):
        return None

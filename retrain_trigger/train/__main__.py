"""`python -m retrain_trigger.train`: train a tabular MLP from a spec and data, gate it, write
an artifact. The command-line contract (flags, exit codes, output) is in docs/trainer.md.

Exit status: 0 the new model passed the gate and the artifact is complete; 2 a user error
(bad flag, spec, data or current artifact), one line `error: ...` on stderr; 3 the new model
failed the gate, one line `gate failed: ...` on stderr and only `metrics.json` written.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_USER_ERROR = 2
EXIT_GATE_FAILED = 3


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _hidden(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from e
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be >= 1, got {text!r}")
    return widths


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # one line, exit status 2 (argparse's own convention, shared with user errors)
        sys.stderr.write(f"error: {message}\n")
        sys.exit(EXIT_USER_ERROR)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m retrain_trigger.train",
        description="Train a tabular MLP for a model's monitoring spec, evaluate it against "
        "the current model on the same holdout, and write an artifact folder if it passes.",
    )
    p.add_argument(
        "--data",
        required=True,
        help="training data: a .parquet or .csv file, or kafka:<seconds>s to export the last "
        "seconds of predictions joined with labels from Kafka first (DRIFTWARDEN_BOOTSTRAP, "
        "DRIFTWARDEN_TOPIC_PREFIX and the DRIFTWARDEN_KAFKA_* security variables; the retrain "
        "trigger sets the first two on its Jobs)",
    )
    p.add_argument("--spec", type=Path, required=True, help="the model's monitoring spec (YAML)")
    p.add_argument("--out", type=Path, required=True, help="artifact folder to write")
    p.add_argument(
        "--current-artifact", type=Path, help="the serving model's artifact, to compare against"
    )
    p.add_argument("--model-version", help="version of the new model (written to the artifact)")
    p.add_argument("--epochs", type=_positive_int, default=50, help="max epochs (default 50)")
    p.add_argument("--batch-size", type=_positive_int, default=512, help="default 512")
    p.add_argument("--lr", type=_positive_float, default=1e-3, help="AdamW lr (default 1e-3)")
    p.add_argument(
        "--patience", type=_positive_int, default=5, help="early-stopping patience (default 5)"
    )
    p.add_argument("--seed", type=int, default=0, help="split, init and batch order (default 0)")
    p.add_argument(
        "--label-column",
        help="label column (default: the spec's target column if present, else 'label')",
    )
    p.add_argument(
        "--gate-metric", help="log_loss|accuracy|roc_auc (classes), rmse|mae (regression)"
    )
    p.add_argument(
        "--gate-tolerance",
        type=_non_negative,
        default=0.01,
        help="fraction by which the new model may be worse than the current (default 0.01)",
    )
    p.add_argument("--holdout-fraction", type=_fraction, default=0.2, help="default 0.2")
    p.add_argument("--hidden", type=_hidden, default=(128, 64), help="default 128,64")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch CPU threads (default 1: an MLP's batches are too small for intra-op "
        "threads to pay, and on a shared node they contend)",
    )
    return p


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Heavy imports after the flags are checked, so `--help` and flag errors stay instant.
    import torch

    from driftwarden.spec import load_spec
    from driftwarden.tables import read_table
    from retrain_trigger.train.artifact import load_artifact, write_artifact, write_metrics
    from retrain_trigger.train.fit import FitSettings, resolve_device
    from retrain_trigger.train.trainer import (
        TrainSettings,
        outcome_metrics,
        resolve_label_column,
        train,
    )

    torch.set_num_threads(args.threads)
    started = time.time()
    spec = load_spec(args.spec)
    device = resolve_device(args.device)
    data = _training_data(args.data, spec, Path(args.out))
    frame = read_table(data)
    label_column = resolve_label_column(frame, spec, args.label_column)
    current = None
    if args.current_artifact is not None:
        current = load_artifact(args.current_artifact, device)
    settings = TrainSettings(
        fit=FitSettings(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            patience=args.patience,
            seed=args.seed,
        ),
        holdout_fraction=args.holdout_fraction,
        hidden=args.hidden,
        gate_metric=args.gate_metric,
        gate_tolerance=args.gate_tolerance,
    )
    print(
        f"training model={spec.model} rows={len(frame)} label={label_column} "
        f"device={device} torch={torch.__version__}",
        flush=True,
    )
    outcome = train(
        frame,
        spec,
        label_column,
        settings,
        device,
        current=current.predictor if current is not None else None,
        on_epoch=lambda report: print(report.line(), flush=True),
    )
    metrics = {
        "model": spec.model,
        "version": args.model_version,
        "created_ts": round(started, 3),
        "data": {
            "path": str(data),
            "source": args.data,
            "sha256": file_sha256(data),
            "rows": len(frame),
            "label_column": label_column,
        },
        "current_artifact": str(args.current_artifact) if args.current_artifact else None,
        "current_version": current.version if current is not None else None,
        "settings": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "patience": args.patience,
            "seed": args.seed,
            "hidden": list(args.hidden),
            "holdout_fraction": args.holdout_fraction,
            "threads": args.threads,
        },
        **outcome_metrics(outcome),
    }
    if not outcome.gate.passed:
        (args.out / "model.pt").unlink(missing_ok=True)  # never leave a rejected model behind
        write_metrics(args.out, metrics)
        sys.stderr.write(f"gate failed: {outcome.gate.reason}\n")
        return EXIT_GATE_FAILED
    write_artifact(
        args.out,
        module=outcome.fit.module,
        arch=outcome.arch,
        features=outcome.features,
        labels=outcome.labels,
        spec=spec,
        version=args.model_version,
        metrics=metrics,
    )
    print(
        f"done artifact={args.out} epochs={outcome.fit.epochs_run} "
        f"duration_s={outcome.fit.duration_s:.1f} gate=passed: {outcome.gate.reason}",
        flush=True,
    )
    return EXIT_OK


def _training_data(data: str, spec: Any, out: Path) -> Path:
    """The file to train on: `data` itself, or for `kafka:<seconds>s` the export of that
    window from Kafka (the same join as `driftwarden dataset export`), written beside the
    artifact folder so that `metrics.json` can name and hash it."""
    if not data.startswith("kafka:"):
        return Path(data)
    import os

    from driftwarden.errors import DriftwardenError
    from driftwarden.kafka import DEFAULT_TOPIC_PREFIX, security_from_args
    from retrain_trigger.dataset import ExportSettings, export_dataset, parse_duration

    bootstrap = os.environ.get("DRIFTWARDEN_BOOTSTRAP", "")
    if not bootstrap:
        raise DriftwardenError(
            f"--data {data}: set DRIFTWARDEN_BOOTSTRAP to the Kafka to export the data from"
        )
    try:
        since_s = parse_duration(data.removeprefix("kafka:"))
    except (ValueError, DriftwardenError) as e:
        raise DriftwardenError(f"--data {data}: expected kafka:<seconds>s ({e})") from e
    security, _ = security_from_args([], os.environ, prog="python -m retrain_trigger.train")
    settings = ExportSettings(
        model=os.environ.get("DRIFTWARDEN_MODEL", spec.model),
        since_s=since_s,
        bootstrap=bootstrap,
        topic_prefix=os.environ.get("DRIFTWARDEN_TOPIC_PREFIX", DEFAULT_TOPIC_PREFIX),
        spec=spec,
        kafka_security=security,
    )
    target = out.parent / f"{out.name}.data.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    report = export_dataset(settings, target)
    print(f"exported rows={report.rows} labelled={report.labelled} path={target}", flush=True)
    return report.path


def main(argv: list[str] | None = None) -> int:
    from driftwarden.errors import DriftwardenError

    try:
        return run(argv)
    except DriftwardenError as e:
        sys.stderr.write(f"error: {e}\n")
        return EXIT_USER_ERROR
    except OSError as e:  # the artifact folder cannot be written, a file vanished mid-run
        sys.stderr.write(f"error: {e}\n")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())

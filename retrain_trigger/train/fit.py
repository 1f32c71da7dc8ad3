"""The training loop (torch): mini-batch AdamW with early stopping on a validation split.

The encoded data is moved to the device once; every epoch draws a seeded permutation and
indexes batches out of the device tensors, so a GPU is never fed from Python lists. On
CUDA the forward pass runs under autocast (bfloat16 where the GPU supports it, else float16
with a gradient scaler); on the CPU it runs in float32. After every epoch the validation
loss is measured and `on_epoch` receives an `EpochReport`; training stops after `patience`
epochs without improvement, and the best epoch's weights are restored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from retrain_trigger.train.encoding import EncodedFeatures
from retrain_trigger.train.model import Architecture, TabularMLP

__all__ = ["EpochReport", "FitResult", "FitSettings", "fit", "resolve_device"]


@dataclass(frozen=True, slots=True)
class FitSettings:
    epochs: int = 50  # upper bound; early stopping usually ends sooner
    batch_size: int = 512  # rows per optimiser step
    lr: float = 1e-3  # AdamW learning rate
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    patience: int = 5  # epochs without a better validation loss before stopping
    seed: int = 0  # weights initialisation and batch order


@dataclass(frozen=True, slots=True)
class EpochReport:
    epoch: int
    epochs: int
    train_loss: float
    valid_loss: float
    best_epoch: int
    rows_per_s: float
    elapsed_s: float

    def line(self) -> str:
        """The one progress line per epoch (logfmt: readable, and parseable by the demo)."""
        return (
            f"epoch={self.epoch}/{self.epochs} train_loss={self.train_loss:.5f} "
            f"valid_loss={self.valid_loss:.5f} best_epoch={self.best_epoch} "
            f"rows_per_s={self.rows_per_s:.0f} elapsed_s={self.elapsed_s:.2f}"
        )


@dataclass(frozen=True, slots=True)
class FitResult:
    module: TabularMLP
    epochs_run: int
    best_epoch: int
    best_valid_loss: float
    duration_s: float
    rows_per_s: float
    device: str
    mixed_precision: str | None  # "bfloat16" | "float16" | None


def resolve_device(choice: str) -> torch.device:
    """`auto` -> CUDA when a device is visible, else the CPU; `cuda` without one is an error."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        from driftwarden.errors import DriftwardenError

        raise DriftwardenError("--device cuda: no CUDA device is visible to torch")
    return torch.device(choice)


def _loss(out: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    if task == "class":
        return F.cross_entropy(out.float(), y)
    return F.mse_loss(out[:, 0].float(), y)


def _to_device(
    enc: EncodedFeatures, y: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, ...]:
    return (
        torch.from_numpy(enc.numerical).to(device),
        torch.from_numpy(enc.categorical).to(device),
        torch.from_numpy(y).to(device),
    )


def _mean_loss(
    module: TabularMLP, data: tuple[torch.Tensor, ...], task: str, chunk: int = 65_536
) -> float:
    num, cat, y = data
    total, n = 0.0, int(y.shape[0])
    module.eval()
    with torch.inference_mode():
        for s in range(0, n, chunk):
            out = module(num[s : s + chunk], cat[s : s + chunk])
            total += float(_loss(out, y[s : s + chunk], task)) * min(chunk, n - s)
    return total / max(n, 1)


def fit(
    arch: Architecture,
    task: str,
    train: tuple[EncodedFeatures, np.ndarray],
    valid: tuple[EncodedFeatures, np.ndarray],
    settings: FitSettings,
    device: torch.device,
    on_epoch: Callable[[EpochReport], None] = lambda _: None,
) -> FitResult:
    """Train a fresh `TabularMLP`; labels are class indices (int64) or standardised floats."""
    torch.manual_seed(settings.seed)
    module = TabularMLP(arch).to(device)
    opt = torch.optim.AdamW(module.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    amp_dtype: torch.dtype | None = None
    if device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype is torch.float16)
    tr = _to_device(*train, device)
    va = _to_device(*valid, device)
    n = int(tr[2].shape[0])
    gen = torch.Generator().manual_seed(settings.seed)
    best_loss, best_epoch, best_state = float("inf"), 0, None
    started = time.perf_counter()
    train_time = 0.0
    epoch = 0
    for epoch in range(1, settings.epochs + 1):
        t0 = time.perf_counter()
        module.train()
        perm = torch.randperm(n, generator=gen).to(device)
        total = torch.zeros((), device=device)
        for s in range(0, n, settings.batch_size):
            idx = perm[s : s + settings.batch_size]
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                out = module(tr[0][idx], tr[1][idx])
            loss = _loss(out, tr[2][idx], task)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total += loss.detach() * idx.shape[0]
        train_loss = float(total) / max(n, 1)
        train_time += time.perf_counter() - t0
        valid_loss = _mean_loss(module, va, task)
        if valid_loss < best_loss:
            best_loss, best_epoch = valid_loss, epoch
            best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        on_epoch(
            EpochReport(
                epoch=epoch,
                epochs=settings.epochs,
                train_loss=train_loss,
                valid_loss=valid_loss,
                best_epoch=best_epoch,
                rows_per_s=n * epoch / max(train_time, 1e-9),
                elapsed_s=time.perf_counter() - started,
            )
        )
        if epoch - best_epoch >= settings.patience:
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return FitResult(
        module=module,
        epochs_run=epoch,
        best_epoch=best_epoch,
        best_valid_loss=best_loss,
        duration_s=time.perf_counter() - started,
        rows_per_s=n * epoch / max(train_time, 1e-9),
        device=str(device),
        mixed_precision=None if amp_dtype is None else str(amp_dtype).removeprefix("torch."),
    )

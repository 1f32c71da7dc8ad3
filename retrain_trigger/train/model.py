"""The tabular MLP and the predictor that pairs it with its encoders (torch).

`TabularMLP`: standardised numerical features and one embedding per categorical feature,
concatenated, then Linear-ReLU-Dropout blocks and a linear head (one logit per class, or
one value for regression). `Architecture` is everything needed to rebuild the module
before loading a state dict; an artifact stores it next to the encoders.

`Predictor.predict(columns)` is the whole inference path used by the trainer (to evaluate
the current model) and by the model server: encode (vectorised), one forward pass under
`torch.inference_mode`, softmax (or de-standardise), numpy out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from retrain_trigger.train.encoding import EncodedFeatures, FeatureEncoder, LabelEncoder

__all__ = ["Architecture", "Predictor", "TabularMLP", "embedding_dim"]


def embedding_dim(cardinality: int) -> int:
    """fast.ai's rule of thumb, capped: small vocabularies get small embeddings."""
    return int(min(16, max(2, round(1.6 * cardinality**0.56))))


@dataclass(frozen=True, slots=True)
class Architecture:
    n_numerical: int
    cardinalities: tuple[int, ...]
    embedding_dims: tuple[int, ...]
    hidden: tuple[int, ...]
    dropout: float
    n_outputs: int

    @classmethod
    def for_data(
        cls,
        encoder: FeatureEncoder,
        labels: LabelEncoder,
        hidden: Sequence[int] = (128, 64),
        dropout: float = 0.1,
    ) -> Architecture:
        cards = tuple(encoder.cardinalities)
        return cls(
            n_numerical=len(encoder.numerical),
            cardinalities=cards,
            embedding_dims=tuple(embedding_dim(c) for c in cards),
            hidden=tuple(int(h) for h in hidden),
            dropout=float(dropout),
            n_outputs=labels.n_outputs,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Architecture:
        return cls(
            n_numerical=int(data["n_numerical"]),
            cardinalities=tuple(int(c) for c in data["cardinalities"]),
            embedding_dims=tuple(int(d) for d in data["embedding_dims"]),
            hidden=tuple(int(h) for h in data["hidden"]),
            dropout=float(data["dropout"]),
            n_outputs=int(data["n_outputs"]),
        )


class TabularMLP(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(
            nn.Embedding(c, d) for c, d in zip(arch.cardinalities, arch.embedding_dims, strict=True)
        )
        width = arch.n_numerical + sum(arch.embedding_dims)
        layers: list[nn.Module] = []
        for h in arch.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(arch.dropout)]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, arch.n_outputs)

    def forward(self, numerical: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        parts = [numerical]
        parts += [emb(categorical[:, j]) for j, emb in enumerate(self.embeddings)]
        return self.head(self.body(torch.cat(parts, dim=1)))


def outputs_to_numpy(out: torch.Tensor, labels: LabelEncoder) -> np.ndarray:
    """Class probabilities [N, K] or regression values [N], float64 on the CPU."""
    out = out.float()
    if labels.task == "class":
        return torch.softmax(out, dim=1).cpu().numpy().astype(np.float64)
    return out[:, 0].cpu().numpy().astype(np.float64) * labels.std + labels.mean


class Predictor:
    """A trained module with its encoders: columns in, probabilities or values out."""

    def __init__(
        self,
        module: TabularMLP,
        features: FeatureEncoder,
        labels: LabelEncoder,
        device: torch.device | str = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.features = features
        self.labels = labels

    def tensors(self, encoded: EncodedFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            torch.from_numpy(encoded.numerical).to(self.device),
            torch.from_numpy(encoded.categorical).to(self.device),
        )

    def predict_encoded(self, encoded: EncodedFeatures, batch_size: int = 65_536) -> np.ndarray:
        outs: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, max(encoded.rows, 1), batch_size):
                part = EncodedFeatures(
                    encoded.numerical[start : start + batch_size],
                    encoded.categorical[start : start + batch_size],
                )
                outs.append(outputs_to_numpy(self.module(*self.tensors(part)), self.labels))
        return np.concatenate(outs) if len(outs) > 1 else outs[0]

    def predict(self, columns: Mapping[str, Any] | pd.DataFrame) -> np.ndarray:
        return self.predict_encoded(self.features.transform(columns))

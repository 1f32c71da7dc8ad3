"""The reference trainer: `python -m retrain_trigger.train` (docs/trainer.md).

Pure parts: `encoding` (features and labels from the spec, vectorised), `gate` (holdout
metrics and the pass/fail rule), `trainer.split_indices`. torch parts (the `torch` extra):
`model` (the tabular MLP and its predictor), `fit` (the training loop), `trainer` (one run),
`artifact` (the artifact folder). Importing this package does not import torch.
"""

from retrain_trigger.train.encoding import EncodingError, FeatureEncoder, LabelEncoder
from retrain_trigger.train.gate import GateResult, evaluate_gate

__all__ = ["EncodingError", "FeatureEncoder", "GateResult", "LabelEncoder", "evaluate_gate"]

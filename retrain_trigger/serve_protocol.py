"""Request and response bodies of the model server: KServe v1 and Open Inference v2. Pure.

Parsing turns a decoded JSON body into feature columns (name -> list of values, in the
spec's feature order) and a row count; every problem is a `BadRequest` naming it, which
the server answers with 400. Responses carry one prediction per row, reduced as the spec's
`prediction` block says (the collector stores exactly this value in the prediction event):

- probability targets: the positive class's probability (`output: positive_class`, the
  default), the arg-max class label (`argmax`), or all class probabilities (`list`);
- class targets: the predicted class label (an integer when the labels are integers);
- regression: the predicted value.

KServe v1 requests: `{"instances": rows}` or `{"inputs": rows}`; rows are objects (by
feature name), positional lists (the spec's feature order) or one columnar object
`{"name": [values...]}`; answered by `{"predictions": [...]}`.
Open Inference v2: `{"id"?, "inputs": [tensor, ...]}` with one tensor per feature (shape
`[N]` or `[N, 1]`) or a single positional tensor `[N, F]`; answered by
`{"model_name", "model_version", "id", "outputs": [{"name", "shape", "datatype", "data"}]}`
with the output named after the spec's prediction column.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from driftwarden.spec import ModelSpec
from retrain_trigger.train.encoding import LabelEncoder

__all__ = [
    "MAX_ROWS",
    "BadRequest",
    "OutputReducer",
    "parse_v1",
    "parse_v2",
    "v2_output",
]

#: Rows in one request; more is a 413 (a client batching without bound).
MAX_ROWS: Final = 100_000

Columns = dict[str, list[Any]]


class BadRequest(Exception):
    """A request body the server cannot answer; `status` is the HTTP status (4xx)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _check_rows(n: int) -> None:
    if n > MAX_ROWS:
        raise BadRequest(f"{n} rows in one request; the limit is {MAX_ROWS}", 413)


def _from_objects(rows: list[Any], names: Sequence[str]) -> Columns:
    for i, r in enumerate(rows):
        if type(r) is not dict:
            raise BadRequest(
                f"instances[{i}] is a {type(r).__name__}; rows must all be objects or all lists"
            )
    return {name: [r.get(name) for r in rows] for name in names}


def _from_lists(rows: list[Any], names: Sequence[str]) -> Columns:
    width = len(names)
    for i, r in enumerate(rows):
        if type(r) is not list:
            raise BadRequest(
                f"instances[{i}] is a {type(r).__name__}; rows must all be objects or all lists"
            )
        if len(r) != width:
            raise BadRequest(
                f"instances[{i}] has {len(r)} values; the model has {width} features "
                f"({', '.join(names)})"
            )
    transposed = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return {name: list(col) for name, col in zip(names, transposed, strict=True)}


def _from_columnar(doc: dict[str, Any], names: Sequence[str]) -> tuple[Columns, int]:
    lengths = {len(v) for v in doc.values() if type(v) is list}
    if any(type(v) is not list for v in doc.values()) or len(lengths) > 1:
        raise BadRequest("columnar instances must map every feature to a list of equal length")
    n = lengths.pop() if lengths else 0
    _check_rows(n)
    return {name: doc.get(name, [None] * n) for name in names}, n


def parse_v1(body: Any, names: Sequence[str]) -> tuple[Columns, int]:
    """Columns and row count of a KServe v1 `:predict` body."""
    if type(body) is not dict:
        raise BadRequest("the body must be a JSON object with an 'instances' list")
    rows = body.get("instances", body.get("inputs"))
    if rows is None:
        raise BadRequest("the body has no 'instances' (or 'inputs')")
    if type(rows) is dict:
        return _from_columnar(rows, names)
    if type(rows) is not list:
        raise BadRequest(f"'instances' must be a list, got {type(rows).__name__}")
    _check_rows(len(rows))
    if not rows:
        return {name: [] for name in names}, 0
    if type(rows[0]) is dict:
        return _from_objects(rows, names), len(rows)
    if type(rows[0]) is list:
        return _from_lists(rows, names), len(rows)
    if len(names) == 1:  # a one-feature model may take bare values
        return _from_lists([[v] for v in rows], names), len(rows)
    raise BadRequest(f"instances[0] is a {type(rows[0]).__name__}; rows must be objects or lists")


@dataclass(frozen=True, slots=True)
class _Tensor:
    name: str
    shape: list[int]
    data: list[Any]


def _flatten(data: Any, where: str) -> list[Any]:
    if type(data) is not list:
        return [data]
    if not data or type(data[0]) is not list:
        return data
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if type(item) is list:
                if len(stack) > 32:
                    raise BadRequest(f"{where}: data nested too deeply")
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _tensor(doc: Any, i: int) -> _Tensor:
    where = f"inputs[{i}]"
    if type(doc) is not dict:
        raise BadRequest(f"{where} must be a tensor object")
    name, shape, data = doc.get("name"), doc.get("shape"), doc.get("data")
    if type(name) is not str:
        raise BadRequest(f"{where} has no 'name' string")
    where = f"input {name!r}"
    if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape):
        raise BadRequest(f"{where}: 'shape' must be a list of non-negative integers")
    if len(shape) > 2:
        raise BadRequest(f"{where}: shape {shape} has more than 2 dimensions")
    if data is None:
        raise BadRequest(f"{where} has no 'data'")
    flat = _flatten(data, where)
    if len(flat) != math.prod(shape):
        raise BadRequest(f"{where}: shape {shape} needs {math.prod(shape)} values, got {len(flat)}")
    return _Tensor(name, shape, flat)


def parse_v2(body: Any, names: Sequence[str]) -> tuple[Columns, int, str | None]:
    """Columns, row count and request id of an Open Inference v2 `/infer` body."""
    if type(body) is not dict:
        raise BadRequest("the body must be a JSON object with an 'inputs' list")
    rid = body.get("id")
    if rid is not None and type(rid) is not str:
        raise BadRequest("'id' must be a string")
    inputs = body.get("inputs")
    if type(inputs) is not list or not inputs:
        raise BadRequest("'inputs' must be a non-empty list of tensors")
    tensors = [_tensor(doc, i) for i, doc in enumerate(inputs)]
    known = set(names)
    if len(tensors) == 1 and tensors[0].name not in known:
        t = tensors[0]
        width = len(names)
        if len(t.shape) == 1 and t.shape[0] == width:
            t = _Tensor(t.name, [1, width], t.data)
        if len(t.shape) != 2 or t.shape[1] != width:
            raise BadRequest(
                f"input {t.name!r}: a positional tensor needs shape [N, {width}] "
                f"({', '.join(names)}), got {t.shape}"
            )
        n = t.shape[0]
        _check_rows(n)
        return {name: t.data[j::width] for j, name in enumerate(names)}, n, rid
    unknown = [t.name for t in tensors if t.name not in known]
    if unknown:
        raise BadRequest(
            f"input(s) {', '.join(map(repr, unknown))} are not features of the model "
            f"({', '.join(names)})"
        )
    n = tensors[0].shape[0] if tensors[0].shape else 1
    columns: Columns = {}
    for t in tensors:
        rows = t.shape[0] if t.shape else 1
        if rows != n or math.prod(t.shape[1:]) != 1:
            raise BadRequest(
                f"input {t.name!r}: shape {t.shape}; per-feature tensors need [{n}] or [{n}, 1]"
            )
        columns[t.name] = t.data
    _check_rows(n)
    return {name: columns.get(name, [None] * n) for name in names}, n, rid


def _label_value(key: str) -> Any:
    """Class keys back to JSON values: "1" -> 1, "True" -> true, "yes" -> "yes"."""
    if key.lstrip("-").isdigit():
        return int(key)
    if key in ("True", "False"):
        return key == "True"
    return key


class OutputReducer:
    """Model outputs (class probabilities or values) -> one JSON value per row, per spec."""

    def __init__(self, spec: ModelSpec, labels: LabelEncoder) -> None:
        self.labels = labels
        pred = spec.prediction
        self.column = pred.column if pred is not None else "prediction"
        self.task = labels.task
        if labels.task == "regression":
            self.mode = "value"
        elif pred is None:
            self.mode = "positive" if len(labels.classes) == 2 else "label"
        elif pred.type == "class" or pred.output == "argmax":
            self.mode = "label"
        elif pred.output == "list":
            self.mode = "list"
        else:
            self.mode = "positive"
        index = labels.positive_index
        if index is None and pred is not None and pred.positive_class < len(labels.classes):
            index = pred.positive_class
        if self.mode == "positive" and index is None:
            self.mode = "label"  # no positive class among several: the label is what's left
        self.positive_index = index
        self.values = [_label_value(k) for k in labels.classes]
        numeric_labels = all(type(v) is int for v in self.values)
        self.datatype = {
            "value": "FP64",
            "positive": "FP64",
            "list": "FP64",
            "label": "INT64" if numeric_labels else "BYTES",
        }[self.mode]

    def __call__(self, outputs: np.ndarray) -> list[Any]:
        if self.mode == "value" or self.mode == "list":
            return outputs.tolist()
        if self.mode == "positive":
            return outputs[:, self.positive_index].tolist()
        values = self.values
        return [values[i] for i in outputs.argmax(axis=1).tolist()]

    def width(self, outputs: np.ndarray) -> int | None:
        return int(outputs.shape[1]) if self.mode == "list" else None


def v2_output(
    reducer: OutputReducer,
    outputs: np.ndarray,
    n: int,
    name: str,
    version: str | None,
    rid: str | None,
) -> dict[str, Any]:
    data = reducer(outputs)
    width = reducer.width(outputs)
    if width is not None:
        shape = [n, width]
        data = [v for row in data for v in row]
    else:
        shape = [n]
    doc: dict[str, Any] = {
        "model_name": name,
        "model_version": version or "",
        "outputs": [
            {"name": reducer.column, "shape": shape, "datatype": reducer.datatype, "data": data}
        ],
    }
    if rid is not None:
        doc["id"] = rid
    return doc

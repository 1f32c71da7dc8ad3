"""Payload formats: a decoded request/response pair in, one row per prediction out.

Pure functions and small immutable objects, no I/O. Three formats (DESIGN.md,
"Kubernetes contract", `driftwarden.io/payload-format`):

- `kserve-v1`: `{"instances": [...]}` (or `{"inputs": [...]}`, or columnar
  `{"inputs": {"name": [...]}}`) answered by `{"predictions": [...]}` (or `"outputs"`).
- `open-inference-v2`: `{"inputs": [tensor, ...]}` answered by `{"outputs": [tensor, ...]}`;
  one tensor per feature (named by the feature, shape `[N]` or `[N, 1]`) or a single
  positional tensor of shape `[N, F]`.
- `json`: any JSON, rows and predictions found by configured field paths (`FieldPath`).

Positional rows take their names from the spec's feature order; object rows keep their
own names. A multi-output prediction is reduced by `PredictionReducer` as the spec says.
Every rejection is a `CaptureError` with a reason from `CAPTURE_REASONS`.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import msgspec

from collector.errors import CaptureError
from driftwarden.spec import ModelSpec, PredictionSpec

PayloadFormat = Literal["kserve-v1", "open-inference-v2", "json"]
PAYLOAD_FORMATS: Final[tuple[str, ...]] = ("kserve-v1", "open-inference-v2", "json")

Features = dict[str, Any]
Row = tuple[Features, Any]  # (features, reduced prediction)

_SCALARS: Final = (int, float, str, bool, type(None))
_decode_json = msgspec.json.decode

#: Deepest nesting of arrays/objects a captured body may have (a payload is a few levels
#: deep; the decoder recurses per level, so a body 10,000 levels deep must not reach it).
MAX_JSON_DEPTH: Final = 64
# Brackets, quotes, and what may follow a backslash in a JSON string (so escapes pair up).
_NOT_STRING_SYNTAX: Final = bytes(b for b in range(256) if b not in b'[]{}"\\/bfnrtu')
_NOT_BRACKET: Final = bytes(b for b in range(256) if b not in b"[]{}")
_ESCAPE: Final = re.compile(rb"\\.", re.DOTALL)
_MALFORMED_AT: Final = re.compile(r"\(byte (\d+)\)")


# --- bodies ------------------------------------------------------------------------------


def too_deep(body: bytes, max_depth: int) -> bool:
    """Are the arrays/objects of a JSON text nested deeper than `max_depth`?

    C-speed bytes operations only: a body with at most `max_depth` brackets returns at
    once; otherwise the body is reduced to its brackets (strings, with their escapes,
    removed) and innermost pairs are peeled off, one level per pass, at most
    `max_depth + 1` passes."""
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False
    skeleton = body.translate(None, _NOT_STRING_SYNTAX)
    if b"\\" in skeleton:
        skeleton = _ESCAPE.sub(b"", skeleton)  # escapes only occur inside strings
    if b'"' in skeleton:
        skeleton = b"".join(skeleton.split(b'"')[::2])  # what lies between strings
    skeleton = skeleton.translate(None, _NOT_BRACKET)
    depth = 0
    while skeleton and depth <= max_depth:
        # One level per pass: the marks keep a pair removed now from exposing another.
        shorter = skeleton.replace(b"[]", b".").replace(b"{}", b".").translate(None, b".")
        if len(shorter) == len(skeleton):  # unbalanced: the decoder rejects it
            break
        skeleton = shorter
        depth += 1
    return depth > max_depth


def decode_body(
    body: bytes, content_encoding: str | None = None, max_depth: int = MAX_JSON_DEPTH
) -> Any:
    """JSON document of a request or response body; gzip/deflate bodies are inflated.

    Rejections: `too_deep` (nesting deeper than `max_depth`), `non_finite` (`NaN`,
    `Infinity`, or a number beyond the float range), `malformed_json`."""
    if content_encoding:
        enc = content_encoding.strip().lower()
        if enc in ("gzip", "x-gzip", "deflate"):
            try:
                # wbits 47: zlib or gzip header, detected automatically; raw deflate fallback.
                body = zlib.decompress(body, 47)
            except zlib.error:
                try:
                    body = zlib.decompress(body, -15)
                except zlib.error as e:
                    raise CaptureError(
                        "unsupported_encoding", f"{enc} body does not inflate"
                    ) from e
        elif enc != "identity":
            raise CaptureError("unsupported_encoding", f"Content-Encoding {enc!r}")
    if too_deep(body, max_depth):
        raise CaptureError("too_deep", f"JSON nested deeper than {max_depth} levels")
    try:
        return _decode_json(body)
    except RecursionError as e:  # unbalanced brackets that json_depth could not pair
        raise CaptureError("too_deep", f"JSON nested deeper than {max_depth} levels") from e
    except msgspec.DecodeError as e:
        text = str(e)
        if text.startswith("Number out of range") or _non_finite_at(body, text):
            raise CaptureError("non_finite", text) from e
        raise CaptureError("malformed_json", text) from e


def _non_finite_at(body: bytes, message: str) -> bool:
    """Did the decoder stop at a `NaN` / `Infinity` / `-Infinity` literal (not JSON)?"""
    m = _MALFORMED_AT.search(message)
    if m is None:
        return False
    at = int(m.group(1))
    return body.startswith((b"NaN", b"Infinity"), at) or body.startswith(b"-Infinity", at)


# --- values ------------------------------------------------------------------------------


def _check_scalar(value: Any, where: str) -> Any:
    t = type(value)
    if t is float:
        if not math.isfinite(value):
            raise CaptureError("non_finite", f"{where} is {value}")
    elif t not in _SCALARS:
        raise CaptureError(
            "unsupported_value", f"{where} is a {type(value).__name__}, expected a scalar"
        )
    return value


def _check_features(row: Features) -> Features:
    """Scalars only, finite; integers become floats (docs/events.md: numbers are floats)."""
    for name, value in row.items():
        t = type(value)
        if t is float:
            if not math.isfinite(value):
                raise CaptureError("non_finite", f"feature {name!r} is {value}")
        elif t is int:
            try:
                row[name] = float(value)
            except OverflowError as e:
                raise CaptureError("non_finite", f"feature {name!r} is beyond a float") from e
        elif t not in _SCALARS:
            raise CaptureError(
                "unsupported_value",
                f"feature {name!r} is a {type(value).__name__}, expected a scalar",
            )
    return row


class RowMapper:
    """Turns one row (object, positional list or scalar) into a feature dict."""

    __slots__ = ("names",)

    def __init__(self, names: Sequence[str] | None) -> None:
        self.names: tuple[str, ...] | None = tuple(names) if names else None

    def __call__(self, row: Any) -> Features:
        if type(row) is dict:
            for key in row:
                if type(key) is not str:  # pragma: no cover - JSON keys are strings
                    raise CaptureError("wrong_type", "row keys must be strings")
            return _check_features(row)
        if type(row) is list:
            return self.positional(row)
        return self.positional([row])

    def positional(self, values: Sequence[Any]) -> Features:
        names = self.names
        if names is None:
            raise CaptureError(
                "positional_without_spec",
                "rows are positional; pass --spec so the collector knows the feature names",
            )
        if len(values) != len(names):
            raise CaptureError(
                "row_length_mismatch",
                f"a row has {len(values)} values, the spec has {len(names)} features",
            )
        return _check_features(dict(zip(names, values, strict=True)))


# --- predictions -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PredictionReducer:
    """Reduces one row's prediction as `spec.prediction` says (DESIGN.md, "Events on Kafka").

    A one-element list is unwrapped (`[0.3]` -> `0.3`) unless the output is kept as a list;
    a longer list of scores is reduced to the positive class's score, the arg-max label
    (a class name when `classes` is given, else the index), or kept. An object prediction
    yields its `column` entry (or its only entry).
    """

    output: Literal["positive_class", "argmax", "list"] = "list"
    positive_class: int = 1
    classes: tuple[str, ...] | None = None
    column: str = "prediction"

    @classmethod
    def from_spec(cls, spec: PredictionSpec | None) -> PredictionReducer:
        if spec is None:
            return cls()
        return cls(
            output=spec.output,
            positive_class=spec.positive_class,
            classes=tuple(spec.classes) if spec.classes else None,
            column=spec.column,
        )

    def __call__(self, value: Any) -> Any:
        t = type(value)
        if t is dict:
            if self.column in value:
                value = value[self.column]
            elif len(value) == 1:
                value = next(iter(value.values()))
            else:
                raise CaptureError(
                    "prediction_shape",
                    f"object prediction without a {self.column!r} entry: {sorted(value)[:5]}",
                )
            t = type(value)
        if t is not list:
            return _check_scalar(value, "prediction")
        for i, v in enumerate(value):
            _check_scalar(v, f"prediction[{i}]")
        if self.output == "list":
            return value
        if len(value) == 1:
            return value[0]
        if not value:
            raise CaptureError("prediction_shape", "empty prediction list")
        if self.output == "positive_class":
            if self.positive_class >= len(value):
                raise CaptureError(
                    "prediction_shape",
                    f"positive class index {self.positive_class} but {len(value)} outputs",
                )
            return value[self.positive_class]
        # argmax
        try:
            best = max(range(len(value)), key=value.__getitem__)
        except TypeError as e:
            raise CaptureError("prediction_shape", "arg-max of non-numeric outputs") from e
        if self.classes is not None and best < len(self.classes):
            return self.classes[best]
        return best


# --- field paths (json format) ------------------------------------------------------------


_WILDCARD: Final = object()


class FieldPath:
    """A dotted path into a JSON document: `data.rows`, `outputs.0.data`, `results.*.score`.

    An empty path (or `$`) is the document itself; an integer segment indexes a list;
    `*` maps the rest of the path over every element of a list (so the result is a list).
    """

    __slots__ = ("segments", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        body = text.strip()
        if body.startswith("$"):
            body = body[1:].lstrip(".")
        segs: list[object] = []
        if body:
            for part in body.split("."):
                if part == "":
                    raise ValueError(f"empty segment in field path {text!r}")
                if part == "*":
                    segs.append(_WILDCARD)
                elif part.lstrip("-").isdigit():
                    segs.append(int(part))
                else:
                    segs.append(part)
        self.segments: tuple[object, ...] = tuple(segs)

    @property
    def has_wildcard(self) -> bool:
        return any(s is _WILDCARD for s in self.segments)

    def resolve(self, doc: Any) -> Any:
        return self._walk(doc, 0)

    def _walk(self, node: Any, i: int) -> Any:
        segs = self.segments
        while i < len(segs):
            seg = segs[i]
            if seg is _WILDCARD:
                if type(node) is not list:
                    raise CaptureError("wrong_type", f"{self.text}: `*` applied to a non-list")
                return [self._walk(item, i + 1) for item in node]
            if type(seg) is int:
                if type(node) is not list:
                    raise CaptureError("wrong_type", f"{self.text}: index {seg} of a non-list")
                try:
                    node = node[seg]
                except IndexError as e:
                    raise CaptureError(
                        "missing_field", f"{self.text}: index {seg} out of range"
                    ) from e
            else:
                if type(node) is not dict:
                    raise CaptureError("wrong_type", f"{self.text}: key {seg!r} of a non-object")
                try:
                    node = node[seg]
                except KeyError as e:
                    raise CaptureError("missing_field", f"{self.text}: no {seg!r}") from e
            i += 1
        return node

    def __repr__(self) -> str:
        return f"FieldPath({self.text!r})"


# --- parsers -----------------------------------------------------------------------------


class PayloadParser(Protocol):
    """Turns a decoded request and response into rows (features, reduced prediction)."""

    format: str

    def rows(self, request: Any, response: Any) -> list[Row]: ...

    def request_id(self, request: Any) -> str | None:
        """An id carried in the body (open-inference `id`), used when no header has one."""
        ...


def _pair(rows: list[Features], preds: list[Any], reduce: PredictionReducer) -> list[Row]:
    if len(rows) != len(preds):
        raise CaptureError("row_count_mismatch", f"{len(rows)} rows but {len(preds)} predictions")
    return [(row, reduce(pred)) for row, pred in zip(rows, preds, strict=True)]


def _field(doc: Any, names: tuple[str, ...], what: str) -> Any:
    if type(doc) is not dict:
        raise CaptureError("wrong_type", f"{what} body is not a JSON object")
    for name in names:
        if name in doc:
            return doc[name]
    raise CaptureError("missing_field", f"{what} body has no {' or '.join(map(repr, names))}")


def _columnar(columns: dict[str, Any]) -> list[Features]:
    """`{"a": [1, 2], "b": [3, 4]}` -> `[{"a": 1, "b": 3}, {"a": 2, "b": 4}]`."""
    lengths = {len(v) if type(v) is list else -1 for v in columns.values()}
    if -1 in lengths or len(lengths) > 1:
        raise CaptureError("wrong_type", "columnar inputs must be lists of equal length")
    names = list(columns)
    return [
        _check_features(dict(zip(names, values, strict=True)))
        for values in zip(*columns.values(), strict=True)
    ]


class KServeV1Parser:
    format = "kserve-v1"

    def __init__(self, mapper: RowMapper, reduce: PredictionReducer) -> None:
        self.mapper = mapper
        self.reduce = reduce

    def rows(self, request: Any, response: Any) -> list[Row]:
        instances = _field(request, ("instances", "inputs"), "request")
        if type(instances) is dict:
            rows = _columnar(instances)
        elif type(instances) is list:
            mapper = self.mapper
            rows = [mapper(row) for row in instances]
        else:
            raise CaptureError("wrong_type", "instances must be a list")
        preds = _field(response, ("predictions", "outputs"), "response")
        if type(preds) is not list:
            raise CaptureError("wrong_type", "predictions must be a list")
        return _pair(rows, preds, self.reduce)

    def request_id(self, request: Any) -> str | None:
        return None


def _flatten_ordered(data: list[Any]) -> list[Any]:
    """Row-major flattening of nested lists, iterative (no recursion limit on odd input)."""
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if type(item) is list:
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


class _Tensor:
    __slots__ = ("data", "name", "shape")

    def __init__(self, doc: Any, what: str) -> None:
        if type(doc) is not dict:
            raise CaptureError("wrong_type", f"{what} tensor is not an object")
        name = doc.get("name")
        shape = doc.get("shape")
        data = doc.get("data")
        if type(name) is not str:
            raise CaptureError("missing_field", f"{what} tensor has no name")
        if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape):
            raise CaptureError("bad_tensor", f"{what} tensor {name!r} has no valid shape")
        if data is None:
            raise CaptureError("missing_field", f"{what} tensor {name!r} has no data")
        flat = data if type(data) is list and (not data or type(data[0]) is not list) else None
        if flat is None:
            flat = _flatten_ordered(data) if type(data) is list else [data]
        size = math.prod(shape)
        if len(flat) != size:
            raise CaptureError(
                "bad_tensor", f"{what} tensor {name!r}: shape {shape} but {len(flat)} values"
            )
        self.name = name
        self.shape = shape
        self.data = flat

    def rows(self) -> list[list[Any]]:
        """Split along the first dimension: `[N, ...]` -> N lists of the rest."""
        if not self.shape:
            return [self.data]
        n = self.shape[0]
        width = math.prod(self.shape[1:])
        data = self.data
        return [data[i * width : (i + 1) * width] for i in range(n)]


class OpenInferenceV2Parser:
    format = "open-inference-v2"

    def __init__(self, mapper: RowMapper, reduce: PredictionReducer) -> None:
        self.mapper = mapper
        self.reduce = reduce
        self.names = set(mapper.names or ())
        self.output_name = reduce.column

    def _rows(self, request: Any) -> list[Features]:
        inputs = _field(request, ("inputs",), "request")
        if type(inputs) is not list or not inputs:
            raise CaptureError("wrong_type", "inputs must be a non-empty list of tensors")
        tensors = [_Tensor(t, "input") for t in inputs]
        positional = (
            len(tensors) == 1
            and self.mapper.names is not None
            and tensors[0].name not in self.names
        )
        if positional:
            t = tensors[0]
            if len(t.shape) <= 1:  # one row of F values
                return [self.mapper.positional(t.data)]
            return [self.mapper.positional(r) for r in t.rows()]
        n = tensors[0].shape[0] if tensors[0].shape else 1
        columns: dict[str, list[Any]] = {}
        for t in tensors:
            if (t.shape[0] if t.shape else 1) != n or math.prod(t.shape[1:]) not in (1,):
                raise CaptureError(
                    "bad_tensor",
                    f"input {t.name!r} has shape {t.shape}; per-feature tensors need [N] or [N, 1]",
                )
            columns[t.name] = t.data
        names = list(columns)
        return [
            _check_features(dict(zip(names, values, strict=True)))
            for values in zip(*columns.values(), strict=True)
        ]

    def rows(self, request: Any, response: Any) -> list[Row]:
        rows = self._rows(request)
        outputs = _field(response, ("outputs",), "response")
        if type(outputs) is not list or not outputs:
            raise CaptureError("wrong_type", "outputs must be a non-empty list of tensors")
        chosen = None
        for doc in outputs:
            if type(doc) is dict and doc.get("name") == self.output_name:
                chosen = doc
                break
        tensor = _Tensor(chosen if chosen is not None else outputs[0], "output")
        n = len(rows)
        shape = tensor.shape
        if shape and shape[0] == n:
            per_row: list[Any] = tensor.rows()
        elif n == 1:
            per_row = [tensor.data]
        else:
            raise CaptureError(
                "row_count_mismatch", f"{n} rows but output {tensor.name!r} has shape {shape}"
            )
        reduce = self.reduce
        return [(row, reduce(p)) for row, p in zip(rows, per_row, strict=True)]

    def request_id(self, request: Any) -> str | None:
        rid = request.get("id") if type(request) is dict else None
        return rid if type(rid) is str and rid else None


class JsonPaths(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where rows and predictions are in a `json` payload (the config file's `json:` block).

    `features` is one path to the row(s) (an object, a list of objects, a list of positional
    lists, or one positional list), or a mapping of feature name -> path (each path giving
    one value, or a list of values through `*`). `prediction` is a path into the response.
    """

    features: str | dict[str, str] = "$"
    prediction: str | None = None


class JsonParser:
    format = "json"

    def __init__(self, mapper: RowMapper, reduce: PredictionReducer, paths: JsonPaths) -> None:
        self.mapper = mapper
        self.reduce = reduce
        if isinstance(paths.features, str):
            self.features: FieldPath | dict[str, FieldPath] = FieldPath(paths.features)
        else:
            self.features = {name: FieldPath(p) for name, p in paths.features.items()}
        self.prediction = FieldPath(paths.prediction) if paths.prediction is not None else None
        self.default_prediction = reduce.column

    def _rows(self, request: Any) -> list[Features]:
        spec = self.features
        if isinstance(spec, dict):
            values = {name: path.resolve(request) for name, path in spec.items()}
            batch = [name for name, path in spec.items() if path.has_wildcard]
            if not batch:
                return [_check_features(values)]
            return _columnar(values)
        node = spec.resolve(request)
        mapper = self.mapper
        if type(node) is dict:
            return [mapper(node)]
        if type(node) is list:
            if node and type(node[0]) in (dict, list):
                return [mapper(row) for row in node]
            return [mapper.positional(node)]
        return [mapper.positional([node])]

    def _prediction(self, response: Any) -> Any:
        if self.prediction is not None:
            return self.prediction.resolve(response)
        if type(response) is dict:
            if self.default_prediction not in response:
                raise CaptureError("missing_field", f"response has no {self.default_prediction!r}")
            return response[self.default_prediction]
        return response

    def rows(self, request: Any, response: Any) -> list[Row]:
        rows = self._rows(request)
        pred = self._prediction(response)
        if len(rows) == 1:
            if type(pred) is list and len(pred) == 1:
                pred = pred[0]
            return [(rows[0], self.reduce(pred))]
        if type(pred) is not list:
            raise CaptureError("row_count_mismatch", f"{len(rows)} rows but one prediction")
        return _pair(rows, pred, self.reduce)

    def request_id(self, request: Any) -> str | None:
        return None


def make_parser(
    payload_format: str,
    *,
    spec: ModelSpec | None = None,
    json_paths: JsonPaths | None = None,
) -> PayloadParser:
    """The parser for a payload format; an unknown format is a `ValueError`."""
    mapper = RowMapper(spec.feature_names if spec is not None else None)
    reduce = PredictionReducer.from_spec(spec.prediction if spec is not None else None)
    if payload_format == "kserve-v1":
        return KServeV1Parser(mapper, reduce)
    if payload_format == "open-inference-v2":
        return OpenInferenceV2Parser(mapper, reduce)
    if payload_format == "json":
        return JsonParser(mapper, reduce, json_paths or JsonPaths())
    raise ValueError(
        f"unknown payload format {payload_format!r} (one of {', '.join(PAYLOAD_FORMATS)})"
    )


def parse_pair(parser: PayloadParser, request: Any, response: Any) -> list[Row]:
    """`parser.rows`, with any unexpected shape mapped to a `CaptureError`."""
    try:
        return parser.rows(request, response)
    except CaptureError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
        raise CaptureError("wrong_type", f"unexpected payload shape ({e})") from e


__all__ = [
    "PAYLOAD_FORMATS",
    "FieldPath",
    "JsonParser",
    "JsonPaths",
    "KServeV1Parser",
    "OpenInferenceV2Parser",
    "PayloadParser",
    "PredictionReducer",
    "Row",
    "RowMapper",
    "decode_body",
    "make_parser",
    "parse_pair",
    "too_deep",
]

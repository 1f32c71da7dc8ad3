"""Prediction events decoded straight into numpy columns, one model at a time.

`ModelCodec` builds, from a model's spec, a msgspec Struct whose `features` field is typed
per feature (numbers for numerical features, any JSON scalar for categorical ones), so one
C-level `decode` validates an event *and* pulls its feature values out in spec order
(`msgspec.structs.astuple`); the batch is then transposed into float64 columns and int32
category codes. The decoded Structs are dropped at the end of the batch: no per-event Python
object outlives `decode` except the prediction id, kept only for models whose spec joins
labels.

Anything the typed decoder rejects goes through the generic schema decoder
(`driftwarden.schema.decode_prediction`): an event the schema rejects is invalid with the
schema's reason; an event the schema accepts but whose feature has the wrong JSON type (a
string for a numerical feature) is kept, the value counted as a type error and treated as
missing.

Categories get int codes per feature: the reference's categories first (codes 0..k-1, in the
profile's order), then unseen values in order of first appearance, up to
`max_categories`; further unseen values share one overflow code. Codes and vocabularies
are part of a model's checkpointed state, so a replica that takes over a partition decodes
the same value to the same code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Annotated, Any, Literal

import msgspec
import numpy as np

from driftwarden.schema import (
    MAX_EVENT_BYTES,
    PREDICTION_SCHEMA,
    EventError,
    PredictionEvent,
    decode_prediction,
)
from driftwarden.spec import ModelSpec

__all__ = [
    "MISSING",
    "OVERFLOW_CATEGORY",
    "Batch",
    "CategoryVocab",
    "Invalid",
    "ModelCodec",
]

_FLOAT_MAX = 1.7976931348623157e308
_Finite = Annotated[float, msgspec.Meta(ge=-_FLOAT_MAX, le=_FLOAT_MAX)]
_NumericValue = _Finite | bool | None
_CategoryValue = str | _Finite | bool | None

#: Code of a missing categorical value (and of a missing class prediction).
MISSING = -1
#: Value that stands for every unseen category past `max_categories`.
OVERFLOW_CATEGORY = "__overflow__"


class CategoryVocab:
    """Value -> int code for one categorical column; bounded; codes never change."""

    __slots__ = ("_codes", "limit", "values")

    def __init__(self, values: Iterable[Any] = (), limit: int = 10_000) -> None:
        self.values: list[Any] = []
        # None maps to MISSING here so that `encode` is one C-level map over the column
        self._codes: dict[Any, int] = {None: MISSING}
        self.limit = limit
        for v in values:
            self.code(v)

    def __len__(self) -> int:
        return len(self.values)

    def code(self, value: Any) -> int:
        """The code of `value`, adding it (or the overflow bucket) when unseen."""
        if value is None:
            return MISSING
        code = self._codes.get(value)
        if code is not None:
            return code
        if len(self.values) >= self.limit:
            value = OVERFLOW_CATEGORY
            code = self._codes.get(value)
            if code is not None:
                return code
        code = len(self.values)
        self.values.append(value)
        self._codes[value] = code
        return code

    def encode(self, column: Sequence[Any]) -> np.ndarray:
        """Codes of a column of values (None -> MISSING)."""
        codes = np.fromiter(
            map(self._codes.get, column, repeat(-2)), dtype=np.int32, count=len(column)
        )
        unseen = np.flatnonzero(codes == -2)
        for i in unseen.tolist():
            codes[i] = self.code(column[i])
        return codes

    def lookup(self, value: Any) -> int:
        """The code of `value` without adding it (-2 when unknown)."""
        if value is None:
            return MISSING
        return self._codes.get(value, -2)

    def as_objects(self) -> np.ndarray:
        """The values as an object array, index = code (for `values[codes]`)."""
        out = np.empty(len(self.values), dtype=object)
        out[:] = self.values
        return out


@dataclass(frozen=True, slots=True)
class Invalid:
    """One rejected record: its position in the decoded batch and the schema's verdict."""

    index: int
    reason: str
    detail: str


@dataclass(slots=True)
class Batch:
    """Decoded rows of one model, in record order. Columns are (features, rows)."""

    index: np.ndarray  # int64, position of each row in the input sequence
    version: np.ndarray  # int32 version codes (see ModelCodec.versions)
    ts: np.ndarray  # float64 event time, unix seconds
    num: np.ndarray  # float64 (n_numerical, rows), NaN = missing or type error
    cat: np.ndarray  # int32 (n_categorical, rows), MISSING = missing
    score: np.ndarray  # float64 prediction score (probability / regression value) or NaN
    label: np.ndarray  # int32 predicted class code or MISSING
    type_errors: np.ndarray | None  # bool (n_numerical, rows) where a value had a wrong type
    ids: list[str] | None  # prediction ids, only when the model joins labels

    @property
    def rows(self) -> int:
        return int(self.index.shape[0])

    def take(self, rows: np.ndarray | slice) -> Batch:
        """The rows selected by an index array or slice (copies)."""
        ids = None
        if self.ids is not None:
            ids = (
                self.ids[rows]
                if isinstance(rows, slice)
                else [self.ids[i] for i in np.asarray(rows).tolist()]
            )
        return Batch(
            index=self.index[rows],
            version=self.version[rows],
            ts=self.ts[rows],
            num=self.num[:, rows],
            cat=self.cat[:, rows],
            score=self.score[rows],
            label=self.label[rows],
            type_errors=None if self.type_errors is None else self.type_errors[:, rows],
            ids=ids,
        )


def _row_struct(
    model: str, numerical: Sequence[str], categorical: Sequence[str], *, only_model: bool = False
) -> type:
    """A Struct like PredictionEvent whose `features` is typed per feature of the spec; with
    `only_model`, its `model` must be `model` (events of other models fail to decode)."""
    feature_fields = [(n, _NumericValue, None) for n in numerical]
    feature_fields += [(n, _CategoryValue, None) for n in categorical]
    features = msgspec.defstruct(
        f"Features_{abs(hash(model))}",
        feature_fields,
        gc=False,
        # a feature the spec does not list is ignored, as the generic schema allows it
        forbid_unknown_fields=False,
    )
    fields: list[tuple[Any, ...]] = []
    for f in msgspec.structs.fields(PredictionEvent):
        ftype = features if f.name == "features" else f.type
        if only_model and f.name == "model":
            ftype = Literal[model]
        if f.default is not msgspec.NODEFAULT:
            fields.append((f.name, ftype, f.default))
        elif f.default_factory is not msgspec.NODEFAULT:
            fields.append((f.name, ftype, msgspec.field(default_factory=f.default_factory)))
        else:
            fields.append((f.name, ftype))
    return msgspec.defstruct(
        f"Row_{abs(hash(model))}",
        fields,
        tag_field="schema",
        tag=PREDICTION_SCHEMA,
        forbid_unknown_fields=True,
        frozen=True,
        gc=False,
    )


class ModelCodec:
    """Decodes one model's prediction records into a `Batch` of columns.

    `categories` seeds each categorical feature's vocabulary (the reference profile's keys,
    so reference categories get the first codes); `classes` seeds the class vocabulary
    shared by class predictions and labels. `max_versions` bounds how many model versions
    are tracked; events of further versions are invalid (`too_many_versions`).
    """

    def __init__(
        self,
        spec: ModelSpec,
        *,
        categories: dict[str, Sequence[Any]] | None = None,
        classes: Sequence[Any] = (),
        keep_ids: bool | None = None,
        max_categories: int = 10_000,
        max_versions: int = 64,
    ) -> None:
        self.spec = spec
        self.model = spec.model
        self.numerical = [f.name for f in spec.features if f.type == "numerical"]
        self.categorical = [f.name for f in spec.features if f.type == "categorical"]
        categories = categories or {}
        self.vocabs = [
            CategoryVocab(categories.get(n, ()), limit=max_categories) for n in self.categorical
        ]
        self.classes = CategoryVocab(self._seed_classes(classes), limit=max_categories)
        self.versions = CategoryVocab(limit=max_versions)
        self.max_versions = max_versions
        if keep_ids is None:
            # labels are joined only when there is something to compute from them
            keep_ids = (
                spec.target is not None
                and spec.prediction is not None
                and bool(spec.performance.metrics)
            )
        self.keep_ids = keep_ids
        pred = spec.prediction
        self.prediction_type = pred.type if pred is not None else None
        self.output = pred.output if pred is not None else "positive_class"
        self.positive_index = pred.positive_class if pred is not None else 1
        self.class_names = list(pred.classes) if pred is not None and pred.classes else None
        self.positive_label = spec.target.positive_label if spec.target is not None else 1
        self._decoder = msgspec.json.Decoder(
            _row_struct(spec.model, self.numerical, self.categorical)
        )
        # accepts a subset of what `_decoder` accepts: this model's events (see `decode`)
        self._batch_decoder = msgspec.json.Decoder(
            _row_struct(spec.model, self.numerical, self.categorical, only_model=True)
        )
        self._n_num = len(self.numerical)

    def _seed_classes(self, classes: Sequence[Any]) -> list[Any]:
        seed: list[Any] = []
        pred = self.spec.prediction
        if pred is not None and pred.classes:
            seed.extend(pred.classes)
        seed.extend(classes)
        return seed

    # --- state for checkpoints ---------------------------------------------------------

    def vocab_state(self) -> dict[str, list[Any]]:
        return {
            "features": [list(v.values) for v in self.vocabs],
            "classes": list(self.classes.values),
            "versions": list(self.versions.values),
        }

    def restore_vocab(self, state: dict[str, list[Any]]) -> None:
        """Re-create the vocabularies a checkpoint recorded (codes stay identical)."""
        limit = self.vocabs[0].limit if self.vocabs else 10_000
        feats = state.get("features", [])
        if len(feats) == len(self.vocabs):
            self.vocabs = [CategoryVocab(vals, limit=max(limit, len(vals))) for vals in feats]
        classes = state.get("classes", [])
        self.classes = CategoryVocab(classes, limit=max(self.classes.limit, len(classes)))
        versions = state.get("versions", [])
        self.versions = CategoryVocab(versions, limit=max(self.max_versions, len(versions)))

    # --- predictions -------------------------------------------------------------------

    def _reduce(self, prediction: Any) -> tuple[float, int]:
        """(score, class code) of one prediction, reduced as the spec says."""
        ptype = self.prediction_type
        if ptype is None:
            return math.nan, MISSING
        if isinstance(prediction, list):
            if not prediction:
                return math.nan, MISSING
            try:
                probs = [float(p) for p in prediction]
            except (TypeError, ValueError):
                return math.nan, MISSING
            best = max(range(len(probs)), key=probs.__getitem__)
            k = self.positive_index
            score = probs[k] if k < len(probs) else math.nan
            if self.output == "argmax" or ptype == "class":
                name = (
                    self.class_names[best]
                    if self.class_names and best < len(self.class_names)
                    else best
                )
                return score, self.classes.code(name)
            return score, MISSING
        if ptype == "class":
            return math.nan, self.classes.code(prediction)
        if isinstance(prediction, str):
            return math.nan, MISSING
        return float(prediction), MISSING

    # --- decoding ----------------------------------------------------------------------

    def decode(self, values: Sequence[bytes]) -> tuple[Batch, list[Invalid], list[tuple[int, str]]]:
        """Decode records of this model.

        Returns the batch of good rows, the invalid records, and (index, model) for valid
        events that name another model than this codec's (the caller routes them).
        """
        events: list[Any] = []  # decoded events of this batch (dropped when it returns)
        index: list[int] | None = None  # position of each event; None: events[k] is values[k]
        invalid: list[Invalid] = []
        foreign: list[tuple[int, str]] = []
        slow: dict[int, tuple[tuple[Any, ...], tuple[bool, ...]]] = {}  # position -> coerced
        if values and max(map(len, values)) <= MAX_EVENT_BYTES:
            # Runs of this model's well-formed events decode in one C-level loop
            # (`list.extend` keeps what it appended before the decoder raised); a record the
            # batch decoder rejects goes through `_decode_one`, the per-record path, which
            # gives the same verdict as if no record had been batch-decoded.
            it = iter(values)
            decode = self._batch_decoder.decode
            i = 0  # position of the next record
            while True:
                before = len(events)
                try:
                    events.extend(map(decode, it))
                    failed = False
                except (msgspec.ValidationError, msgspec.DecodeError):
                    failed = True
                ok = len(events) - before
                if index is not None:
                    index.extend(range(i, i + ok))
                i += ok
                if not failed:
                    break
                if index is None:
                    index = list(range(i))
                self._decode_one(values[i], i, events, index, invalid, foreign, slow)
                i += 1
        else:
            index = []
            for i, value in enumerate(values):
                self._decode_one(value, i, events, index, invalid, foreign, slow)
        # one pass per field: list comprehensions beat appends in the loop above
        astuple = msgspec.structs.astuple
        if slow:
            rows = [slow[k][0] if k in slow else astuple(r.features) for k, r in enumerate(events)]
        else:
            rows = [astuple(r.features) for r in events]
        versions = [r.version for r in events]
        ts = [r.ts for r in events]
        preds = [r.prediction for r in events]
        ids = [r.id for r in events] if self.keep_ids else []
        errors = [(k, e) for k, (_, e) in slow.items()]
        return (
            self._columns(rows, index, versions, ts, preds, ids, errors, invalid),
            invalid,
            foreign,
        )

    def _decode_one(
        self,
        value: bytes,
        i: int,
        events: list[Any],
        index: list[int],
        invalid: list[Invalid],
        foreign: list[tuple[int, str]],
        slow: dict[int, tuple[tuple[Any, ...], tuple[bool, ...]]],
    ) -> None:
        """Decode record `i` on its own: the typed decoder, else the generic schema (an
        invalid event, or one whose feature has the wrong JSON type: coerced into `slow`)."""
        try:
            if len(value) > MAX_EVENT_BYTES:
                raise EventError(
                    "oversize", f"event is {len(value)} bytes, the limit is {MAX_EVENT_BYTES}"
                )
            r = self._decoder.decode(value)
        except (msgspec.ValidationError, msgspec.DecodeError, EventError):
            try:
                r = decode_prediction(value)
            except EventError as e:
                invalid.append(Invalid(i, e.reason, e.detail))
                return
            if r.model == self.model:
                slow[len(events)] = self._coerce(r.features)
        if r.model != self.model:
            foreign.append((i, r.model))
            return
        events.append(r)
        index.append(i)

    def _coerce(self, features: dict[str, Any]) -> tuple[tuple[Any, ...], tuple[bool, ...]]:
        """Feature values in layout order from a generic event; wrong types become None."""
        out: list[Any] = []
        errors: list[bool] = []
        for name in self.numerical:
            v = features.get(name)
            bad = isinstance(v, str)
            out.append(None if bad else v)
            errors.append(bad)
        out.extend(features.get(name) for name in self.categorical)
        return tuple(out), tuple(errors)

    def _columns(
        self,
        rows: list[tuple[Any, ...]],
        index: list[int] | None,
        versions: list[str],
        ts: list[float],
        preds: list[Any],
        ids: list[str],
        slow: list[tuple[int, tuple[bool, ...]]],
        invalid: list[Invalid],
    ) -> Batch:
        n = len(rows)
        n_num = self._n_num
        n_cat = len(self.categorical)
        num = np.empty((n_num, n), dtype=np.float64)
        cat = np.empty((n_cat, n), dtype=np.int32)
        if n:
            cols = list(zip(*rows, strict=True))
            for j in range(n_num):
                # None (missing) -> NaN, bool -> 0/1; fromiter skips the
                # sequence-shape discovery of an assignment from a tuple
                num[j] = np.fromiter(cols[j], dtype=np.float64, count=n)
            for j in range(n_cat):
                cat[j] = self.vocabs[j].encode(cols[n_num + j])
        type_errors = None
        if slow:
            type_errors = np.zeros((n_num, n), dtype=bool)
            for pos, errs in slow:
                type_errors[:, pos] = errs
            if not type_errors.any():
                type_errors = None
        # versions: bounded vocabulary; rows of a version past the bound are invalid
        vocab = self.versions
        get = vocab._codes.get
        over: list[int] = []
        if n and versions.count(versions[0]) == n and get(versions[0], -2) >= 0:
            vlist: Any = np.full(n, get(versions[0]), dtype=np.int32)  # one known version
        else:
            vlist = [get(v, -2) for v in versions]
        if isinstance(vlist, list) and -2 in vlist:
            for k, v in enumerate(versions):
                if vlist[k] != -2:
                    continue
                code = vocab.lookup(v)
                if code < 0:
                    if len(vocab) >= self.max_versions:
                        code = -1
                        over.append(k)
                    else:
                        code = vocab.code(v)
                vlist[k] = code
        vcodes = np.asarray(vlist, dtype=np.int32)
        score = np.empty(n, dtype=np.float64)
        label = np.empty(n, dtype=np.int32)
        if self.prediction_type in ("probability", "regression"):
            try:
                score[:] = preds
                label.fill(MISSING)
            except (TypeError, ValueError):
                for k, p in enumerate(preds):
                    score[k], label[k] = self._reduce(p)
        else:
            for k, p in enumerate(preds):
                score[k], label[k] = self._reduce(p)
        batch = Batch(
            index=np.arange(n, dtype=np.int64) if index is None else np.array(index, np.int64),
            version=vcodes,
            ts=np.array(ts, dtype=np.float64),
            num=num,
            cat=cat,
            score=score,
            label=label,
            type_errors=type_errors,
            ids=ids if self.keep_ids else None,
        )
        if over:
            for k in over:
                invalid.append(
                    Invalid(
                        k if index is None else index[k],
                        "too_many_versions",
                        f"model {self.model!r} already tracks {self.max_versions} versions",
                    )
                )
            keep = np.ones(n, dtype=bool)
            keep[over] = False
            batch = batch.take(np.flatnonzero(keep))
        return batch

    def encode_label(self, label: Any) -> tuple[int, float]:
        """(class code, numeric value) of a feedback label."""
        if self.spec.target is not None and self.spec.target.type == "regression":
            if isinstance(label, bool | str):
                return MISSING, math.nan
            return MISSING, float(label)
        return self.classes.code(label), math.nan

    @property
    def positive_code(self) -> int:
        return self.classes.code(self.positive_label)

"""Loading what the evaluator needs: spec files, reference profiles, spec hot-reload.

The adapters around the pure `detectors.service.evaluate.StatsContext`:

* `ProfileCache` builds each reference profile once, keyed by the reference file's content,
  in memory and optionally as `.npz` files in a cache folder (disk I/O).
* `build_context` reads a spec's reference (through the cache) into a `StatsContext`.
* `ContextRegistry` loads the specs of a folder and reloads those whose files changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from detectors.profile import ReferenceProfile
from detectors.service.evaluate import StatsContext
from driftwarden.errors import DriftwardenError, SpecError
from driftwarden.spec import ModelSpec, load_spec
from driftwarden.tables import read_table

__all__ = ["ContextRegistry", "ProfileCache", "build_context"]

_log = logging.getLogger(__name__)


class ProfileCache:
    """Reference profiles by reference-file content, built once per process; with
    `directory`, also saved as `.npz` files so a restarted process does not rebuild them."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._profiles: dict[str, tuple[ReferenceProfile, pd.DataFrame]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _digest(path: Path, columns: list[str]) -> str:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        h.update(json.dumps(columns).encode())
        return h.hexdigest()[:24]

    def get(self, path: Path, columns: list[str]) -> tuple[ReferenceProfile, pd.DataFrame]:
        """(profile, frame of the columns) of a reference file."""
        try:
            key = self._digest(path, columns)
        except OSError as e:
            raise SpecError(f"reference {path}: cannot read ({e})") from e
        with self._lock:
            hit = self._profiles.get(key)
            if hit is not None:
                return hit
            frame = read_table(path)
            frame = frame[[c for c in columns if c in frame.columns]]
            profile = None
            npz = self.directory / f"profile-{key}.npz" if self.directory is not None else None
            if npz is not None and npz.exists():
                try:
                    profile = ReferenceProfile.load(npz)
                except ValueError:
                    profile = None
            if profile is None:
                profile = ReferenceProfile.from_frame(frame)
                if npz is not None:
                    npz.parent.mkdir(parents=True, exist_ok=True)
                    tmp = npz.with_suffix(".tmp")
                    profile.save(tmp)
                    os.replace(tmp, npz)
            self._profiles[key] = (profile, frame)
            return profile, frame


def build_context(
    spec: ModelSpec,
    cache: ProfileCache,
    *,
    max_categories: int = 10_000,
    max_versions: int = 64,
) -> StatsContext:
    """A `StatsContext` for a spec: reads and profiles the reference (cached)."""
    profile = None
    matrix = None
    if spec.reference is not None:
        wanted = list(spec.feature_names)
        for part in (spec.prediction, spec.target):
            if part is not None:
                wanted.append(part.column)
        profile, frame = cache.get(spec.reference.path, wanted)
        missing = [f for f in spec.feature_names if f not in profile]
        if missing:
            raise SpecError(
                f"model {spec.model!r}: reference {spec.reference.path} has no column(s) "
                f"{', '.join(map(repr, missing))}"
            )
        opts = spec.drift.multivariate
        if opts.enabled:
            nums = [f.name for f in spec.features if f.type == "numerical"]
            m = frame[nums].to_numpy(dtype=np.float64, na_value=np.nan)
            m = m[np.isfinite(m).all(axis=1)]
            if m.shape[0] > opts.max_rows:
                rng = np.random.default_rng(0)
                m = m[np.sort(rng.choice(m.shape[0], opts.max_rows, replace=False))]
            matrix = m
    return StatsContext(
        spec,
        profile,
        reference_matrix=matrix,
        max_categories=max_categories,
        max_versions=max_versions,
    )


class ContextRegistry:
    """The models of a folder of spec files, reloaded when a file changes.

    `get(model)` is what the shards call; `reload()` re-reads the folder and returns the
    names of the models whose context changed (added, changed or removed). A spec that
    fails to load keeps the previous version of that model and is logged, so one bad edit
    never stops monitoring of the others.
    """

    def __init__(
        self,
        directory: Path,
        *,
        cache: ProfileCache | None = None,
        max_categories: int = 10_000,
        max_versions: int = 64,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.cache = cache or ProfileCache()
        self.max_categories = max_categories
        self.max_versions = max_versions
        self._on_error = on_error or (lambda msg: _log.error("%s", msg))
        self._files: dict[Path, tuple[int, int, str | None]] = {}  # path -> (mtime, size, model)
        self._contexts: dict[str, StatsContext] = {}
        self.errors: dict[str, str] = {}  # file -> last error

    def get(self, model: str) -> StatsContext | None:
        return self._contexts.get(model)

    @property
    def models(self) -> Mapping[str, StatsContext]:
        return self._contexts

    def load(self) -> None:
        """First load: any invalid spec is an error (the service refuses to start)."""
        if not self.directory.is_dir():
            raise SpecError(f"{self.directory}: not a directory of spec files")
        self.reload(strict=True)

    def reload(self, *, strict: bool = False) -> set[str]:
        changed: set[str] = set()
        seen: set[Path] = set()
        paths = sorted([*self.directory.glob("*.yaml"), *self.directory.glob("*.yml")])
        for p in paths:
            seen.add(p)
            try:
                st = p.stat()
            except OSError:
                continue
            prev = self._files.get(p)
            if prev is not None and prev[:2] == (st.st_mtime_ns, st.st_size):
                continue
            try:
                spec = load_spec(p)
                owner = next(
                    (q for q, (_, _, m) in self._files.items() if m == spec.model and q != p), None
                )
                if owner is not None and owner in paths:
                    raise SpecError(f"{p}: model {spec.model!r} is already defined by {owner}")
                ctx = build_context(
                    spec,
                    self.cache,
                    max_categories=self.max_categories,
                    max_versions=self.max_versions,
                )
                self._log_notes(spec)
            except DriftwardenError as e:
                if strict:
                    raise
                self.errors[str(p)] = str(e)
                self._on_error(f"spec {p} not (re)loaded: {e}")
                self._files[p] = (st.st_mtime_ns, st.st_size, prev[2] if prev else None)
                continue
            self.errors.pop(str(p), None)
            if prev is not None and prev[2] and prev[2] != spec.model:
                self._contexts.pop(prev[2], None)
                changed.add(prev[2])
            old = self._contexts.get(spec.model)
            if old is None or old.fingerprint != ctx.fingerprint:
                changed.add(spec.model)
            self._contexts[spec.model] = ctx
            self._files[p] = (st.st_mtime_ns, st.st_size, spec.model)
        for p in list(self._files):
            if p not in seen:
                model = self._files.pop(p)[2]
                if model is not None and model in self._contexts:
                    del self._contexts[model]
                    changed.add(model)
        return changed

    @staticmethod
    def _log_notes(spec: ModelSpec) -> None:
        w = spec.window
        if w.mode == "sliding" and w.duration_s is not None:
            _log.warning(
                "model %s: window.duration_s is ignored for sliding windows (they slide by rows)",
                spec.model,
            )
        if spec.reference is None:
            _log.warning("model %s: no reference data; only data quality is measured", spec.model)

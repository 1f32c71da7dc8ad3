"""False alarms and detection delay: Evidently defaults, FDR, calibrated, calibrated + sequential.

Stationary streams of simulated model-days (288 windows a day) over six feature shapes
(normal, skewed, heavy-tailed t3, integer counts, categorical with rare levels, a column
with 10 % missing values), a 20,000-row reference, windows of 500, 2,000 and 10,000 rows:
false dataset alarms per model-day, model-days with any false feature flag, false feature
flags per window. Then shifts of one feature (0.25, 0.5, 1 sd; a category re-weighting; the
missing share rising to 30 %) at 2,000 rows: windows until the shifted feature is flagged.

Modes (every one computes the same scores with the same code, `detectors.drift`):
  evidently   defaults (normed Wasserstein >= 0.1, Jensen-Shannon >= 0.1)
  fdr         p-value tests (KS, chi-square with pooling) with Benjamini-Hochberg at 0.05
  calibrated  `thresholds: calibrated`, 1 % of model-days, 288 windows a day
  cal+seq     calibrated (half the budget) + CUSUM (the other half)

``python -m bench.false_alarms --quick`` (< 60 s: one day at 500 and 2,000 rows, fewer
shift repeats); the full run is bounded (about 5-8 minutes on 2 shared cores).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from detectors.calibration import CalibrationSettings, calibrate
from detectors.drift import DriftConfig, dataset_drift
from detectors.profile import ReferenceProfile, summarize
from detectors.sequential import SequentialDetector
from detectors.stattests import get_stattest

N_REF = 20_000
PER_DAY = 288
LEVELS = np.array(["a", "b", "c", "d", "e", "f", "g", "h"])
SHARES = np.array([0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.015, 0.005])
TYPES = {
    "normal": "numerical",
    "skewed": "numerical",
    "heavy": "numerical",
    "counts": "numerical",
    "category": "categorical",
    "missing": "numerical",
}
MODES = ("evidently", "fdr", "calibrated", "cal+seq")


def generate(r: np.random.Generator, n: int, shift: dict | None = None) -> dict[str, np.ndarray]:
    shift = shift or {}
    shares = SHARES * shift.get("reweight", 1.0)
    miss = r.normal(size=n)
    miss[r.random(n) < shift.get("missing", 0.1)] = np.nan
    return {
        "normal": r.normal(size=n) + shift.get("sd", 0.0),
        "skewed": r.lognormal(0.0, 0.8, n),
        "heavy": r.standard_t(3, n),
        "counts": r.poisson(12, n).astype(np.int64),
        "category": r.choice(LEVELS, p=shares / shares.sum(), size=n),
        "missing": miss,
    }


def _profiles(data: dict[str, np.ndarray]) -> dict:
    return {k: summarize(k, v) for k, v in data.items()}


class Modes:
    """Per-window verdicts of the four modes for one window size."""

    def __init__(self, profile: ReferenceProfile, window: int) -> None:
        self.profile = profile
        self.evidently = DriftConfig()
        self.fdr = DriftConfig(
            numerical_test="ks",
            categorical_test="chisquare",
            chisquare_min_expected=5,
            fdr_alpha=0.05,
        )
        cols = {
            k: (t, "wasserstein" if t == "numerical" else "jensenshannon") for k, t in TYPES.items()
        }
        base = CalibrationSettings(window_rows=window, windows_per_day=PER_DAY)
        self.cal = calibrate(profile, cols, base)
        self.cal_half = calibrate(profile, cols, CalibrationSettings(window_rows=window, share=0.5))
        self._reset()

    def _reset(self) -> None:
        self.seq = SequentialDetector(self.cal_half)

    def window(self, data: dict[str, np.ndarray]) -> dict[str, tuple[dict[str, bool], bool]]:
        cur = _profiles(data)
        ev = dataset_drift(self.profile, cur, self.evidently, column_types=TYPES)
        fd = dataset_drift(self.profile, cur, self.fdr, column_types=TYPES)
        out = {
            "evidently": ({c.column: c.drift_detected for c in ev.columns}, ev.dataset_drift),
            "fdr": ({c.column: c.drift_detected for c in fd.columns}, fd.dataset_drift),
        }
        scores = {c.column: (c.score, c.n_current) for c in ev.columns}
        for mode, cal in (("calibrated", self.cal), ("cal+seq", self.cal_half)):
            flags = {}
            for name, (score, n) in scores.items():
                col = cal.columns[name]
                test = get_stattest(col.test, col.threshold_at(n))
                flags[name] = score is not None and test.detected(score)
            out[mode] = (flags, sum(flags.values()) / len(flags) >= 0.5)
        self.seq.update(scores)
        flags, _ = out["cal+seq"]
        flags = {k: v or self.seq.alarms[k] for k, v in flags.items()}
        share = sum(flags.values()) / len(flags) >= 0.5
        out["cal+seq"] = (flags, share or self.seq.dataset_alarm)
        return out


def stationary(modes: Modes, window: int, days: int, seed: int) -> dict[str, dict[str, float]]:
    r = np.random.default_rng(seed)
    res = {m: {"ds_days": 0, "flag_days": 0, "flags": 0} for m in MODES}
    for _ in range(days):
        modes._reset()
        day = {m: [False, False] for m in MODES}
        for _ in range(PER_DAY):
            for m, (flags, ds) in modes.window(generate(r, window)).items():
                n = sum(flags.values())
                res[m]["flags"] += n
                day[m][0] |= ds
                day[m][1] |= n > 0
        for m in MODES:
            res[m]["ds_days"] += day[m][0]
            res[m]["flag_days"] += day[m][1]
    n_win = days * PER_DAY * len(TYPES)
    return {
        m: {
            "dataset_alarm_days": v["ds_days"] / days,
            "flag_days": v["flag_days"] / days,
            "flags_per_window": v["flags"] / n_win,
        }
        for m, v in res.items()
    }


SHIFTS: dict[str, tuple[str, dict]] = {
    "0.25 sd": ("normal", {"sd": 0.25}),
    "0.5 sd": ("normal", {"sd": 0.5}),
    "1 sd": ("normal", {"sd": 1.0}),
    "re-weighting": ("category", {"reweight": np.array([0.6, 1.2, 1.2, 1.2, 1.5, 1.5, 2, 2])}),
    "missing 10->30 %": ("missing", {"missing": 0.3}),
}


def delays(modes: Modes, window: int, repeats: int, seed: int, cap: int = 20) -> dict:
    r = np.random.default_rng(seed)
    out: dict[str, dict[str, float]] = {}
    for label, (feature, shift) in SHIFTS.items():
        per_mode: dict[str, list[int]] = {m: [] for m in MODES}
        for _ in range(repeats):
            modes._reset()
            for _ in range(5):  # some quiet windows first
                modes.window(generate(r, window))
            first: dict[str, int] = {}
            for k in range(1, cap + 1):
                for m, (flags, _) in modes.window(generate(r, window, shift)).items():
                    if flags[feature] and m not in first:
                        first[m] = k
                if len(first) == len(MODES):
                    break
            for m in MODES:
                per_mode[m].append(first.get(m, cap + 1))
        out[label] = {m: float(np.median(v)) for m, v in per_mode.items()}
    return out


def _fmt_delay(x: float, cap: int = 20) -> str:
    return f"> {cap}" if x > cap else f"{x:g}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one day per size, < 60 s")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    plan: list[tuple[int, int]] = (
        [(500, 1), (2000, 1)] if args.quick else [(500, 12), (2000, 8), (10_000, 2)]
    )
    r = np.random.default_rng(args.seed)
    profile = ReferenceProfile.from_frame(pd.DataFrame(generate(r, N_REF)))
    rows: list[str] = []
    head = "| window rows | model-days | metric | " + " | ".join(MODES) + " |"
    rows += [head, "|" + "---|" * (3 + len(MODES))]
    shift_table: dict = {}
    for window, days in plan:
        t = time.perf_counter()
        modes = Modes(profile, window)
        st = stationary(modes, window, days, args.seed + window)
        for key, label, fmt in (
            ("dataset_alarm_days", "false dataset alarms per model-day", "{:.0%}"),
            ("flag_days", "model-days with a false feature flag", "{:.0%}"),
            ("flags_per_window", "false feature flags per window", "{:.2%}"),
        ):
            cells = " | ".join(fmt.format(st[m][key]) for m in MODES)
            rows.append(f"| {window:,} | {days} | {label} | {cells} |")
        if window == 2000:
            shift_table = delays(modes, window, 2 if args.quick else 5, args.seed + 1)
        print(f"# {window} rows: {time.perf_counter() - t:.1f} s", flush=True)
    rows += ["", "| shift of one feature, 2,000-row windows | " + " | ".join(MODES) + " |"]
    rows.append("|" + "---|" * (1 + len(MODES)))
    for label, d in shift_table.items():
        rows.append(f"| {label} | " + " | ".join(_fmt_delay(d[m]) for m in MODES) + " |")
    print("\n".join(rows))
    print(f"\n(total {time.perf_counter() - t0:.0f} s; delays: median windows until flagged)")


if __name__ == "__main__":
    main()

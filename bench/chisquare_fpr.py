"""False-positive rate of chi-square drift tests on undrifted categorical columns.

    python -m bench.chisquare_fpr                      # 2,000 seeds per scenario
    python -m bench.chisquare_fpr --seeds 500 --rows 1000 300

Reference and current are drawn from the *same* distribution, so every flag is a false
positive; at a 0.05 threshold a sound test flags about 5 %. For each scenario and seed:

* Evidently: Evidently 0.7.23's own ``chisquare`` stat test (run when evidently is
  importable; otherwise driftwarden's compatible default, which the compatibility suite
  shows is identical);
* driftwarden's default ``chisquare`` (Evidently-compatible; its flags must equal the above);
* driftwarden with ``chisquare_min_expected=5``: the 2 x k test of homogeneity with rare
  categories pooled until every expected count is at least 5.
"""

from __future__ import annotations

import argparse
import math
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from detectors.profile import summarize
from detectors.stattests import get_stattest


def _zipf(k: int, s: float) -> np.ndarray:
    w = 1.0 / np.arange(1, k + 1) ** s
    return w / w.sum()


def scenarios() -> dict[str, Callable[[np.random.Generator, int], np.ndarray]]:
    def cats(p: np.ndarray) -> Callable[[np.random.Generator, int], np.ndarray]:
        keys = np.array([f"c{i:02d}" for i in range(p.shape[0])], dtype=object)
        return lambda rng, n: rng.choice(keys, n, p=p)

    return {
        "3 categories, uniform": cats(np.full(3, 1 / 3)),
        "5 categories, skewed (50/20/15/10/5 %)": cats(np.array([0.5, 0.2, 0.15, 0.1, 0.05])),
        "Poisson(1.5) counts (<= 10 values)": lambda rng, n: rng.poisson(1.5, n),
        "10 categories, Zipf s=1": cats(_zipf(10, 1.0)),
        "20 categories, Zipf s=1.1": cats(_zipf(20, 1.1)),
        "50 categories, Zipf s=1.1": cats(_zipf(50, 1.1)),
    }


def _evidently_chisquare() -> Callable[[pd.Series, pd.Series], bool] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from evidently.legacy.calculations.stattests.chisquare_stattest import _chi_stat_test
            from evidently.legacy.core import ColumnType
    except ImportError:
        return None

    def run(ref: pd.Series, cur: pd.Series) -> bool:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # divide by zero on categories the reference lacks
            return bool(_chi_stat_test(ref, cur, ColumnType.Categorical, 0.05)[1])

    return run


def measure(n_ref: int, n_cur: int, seeds: int) -> list[dict]:
    evidently = _evidently_chisquare()
    compat, sound = get_stattest("chisquare"), get_stattest("chisquare", min_expected=5.0)
    rows = []
    for name, draw in scenarios().items():
        flags = {"evidently": 0, "compat": 0, "sound": 0}
        mismatches = 0
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            ref, cur = draw(rng, n_ref), draw(rng, n_cur)
            r, c = summarize("x", ref).sample.as_counts(), summarize("x", cur).sample.as_counts()
            compat_flag = compat(r, c, "categorical").drift_detected
            flags["compat"] += compat_flag
            flags["sound"] += sound(r, c, "categorical").drift_detected
            if evidently is not None:
                ev_flag = evidently(pd.Series(ref), pd.Series(cur))
                flags["evidently"] += ev_flag
                mismatches += ev_flag != compat_flag
        rows.append(
            {
                "scenario": name,
                "rows": (n_ref, n_cur),
                "seeds": seeds,
                "evidently": flags["evidently"] / seeds if evidently is not None else None,
                "compat": flags["compat"] / seeds,
                "sound": flags["sound"] / seeds,
                "evidently_vs_compat_mismatches": mismatches if evidently is not None else None,
            }
        )
    return rows


def _pct(p: float | None, n: int) -> str:
    if p is None:
        return "-"
    half = 1.96 * math.sqrt(max(p * (1 - p), 1e-12) / n) * 100
    return f"{p * 100:.1f} % ± {half:.1f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2000)
    parser.add_argument("--rows", type=int, nargs=2, default=[1000, 1000], metavar=("REF", "CUR"))
    args = parser.parse_args(argv)
    rows = measure(args.rows[0], args.rows[1], args.seeds)
    print(
        f"False-positive rate at threshold 0.05, undrifted data, {args.rows[0]:,} reference / "
        f"{args.rows[1]:,} current rows, {args.seeds:,} seeds (± = 95 % interval)\n"
    )
    print(
        "| scenario | Evidently 0.7 `chisquare` | driftwarden default (compatible) | driftwarden `chisquare_min_expected: 5` |"
    )
    print("|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['scenario']} | {_pct(r['evidently'], r['seeds'])} | {_pct(r['compat'], r['seeds'])} | {_pct(r['sound'], r['seeds'])} |"
        )
    mism = [r["evidently_vs_compat_mismatches"] for r in rows]
    if all(m is not None for m in mism):
        print(
            f"\nEvidently vs driftwarden default: {sum(mism)} differing verdicts in {len(rows) * args.seeds:,} tests."
        )


if __name__ == "__main__":
    main()

"""Kernel MMD permutation test: agreement with a direct O(n^2) numpy version, chunking,
determinism, calibration under the null, power under a shift, and bounded memory."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch  # the `torch` extra is part of `make test`; missing, this module fails loudly

from detectors.mmd import MMDResult, MMDTest, median_heuristic_bandwidth

ROOT = Path(__file__).resolve().parents[2]


def _naive_mmd2(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    """Unbiased MMD² straight from the definition, full kernel matrices in numpy."""

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1)
        return np.exp(-d2 / (2.0 * sigma * sigma))

    m, n = len(x), len(y)
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    return (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2.0 * kxy.mean()
    )


def _standardise(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, sd = x.mean(axis=0), x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return (x - mean) / sd, (y - mean) / sd


def _pair(seed: int, m: int = 120, n: int = 90, d: int = 3, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 10.0, 0.1, 5.0, 2.0])[:d]
    x = rng.normal(size=(m, d)) * scale
    y = rng.normal(size=(n, d)) * scale + shift * scale
    return x, y


def test_statistic_and_bandwidth_match_direct_numpy():
    from scipy.spatial.distance import pdist

    x, y = _pair(1, shift=0.3)
    result = MMDTest(n_permutations=50, seed=3).test(x, y)
    xs, ys = _standardise(x, y)
    sigma = float(np.median(pdist(np.vstack([xs, ys]))))
    assert result.bandwidth == pytest.approx(sigma, rel=1e-12)
    assert result.mmd2 == pytest.approx(_naive_mmd2(xs, ys, sigma), rel=1e-10, abs=1e-14)


def test_p_value_matches_direct_permutations():
    x, y = _pair(2, m=40, n=30, shift=0.2)
    test = MMDTest(n_permutations=60, seed=11)
    result = test.test(x, y)
    # Rebuild the same partitions (the bandwidth used no randomness: N <= 2000).
    assignments = test._assignments(len(x), len(y), torch.Generator().manual_seed(11)).numpy()
    pooled = np.vstack(_standardise(x, y))
    stats = []
    for column in range(1 + test.n_permutations):
        ref_rows = assignments[:, column] == 1
        stats.append(_naive_mmd2(pooled[ref_rows], pooled[~ref_rows], result.bandwidth))
    assert stats[0] == pytest.approx(result.mmd2, rel=1e-10)
    exceed = sum(s >= stats[0] - 1e-12 for s in stats[1:])
    assert result.p_value == pytest.approx((1 + exceed) / (test.n_permutations + 1))


def test_result_shape():
    x, y = _pair(3)
    result = MMDTest(n_permutations=20, threshold=0.1, seed=0).test(x, y)
    assert isinstance(result, MMDResult)
    assert result.n_permutations == 20
    assert result.threshold == 0.1
    assert result.device == "cpu" or result.device.startswith("cuda")
    assert result.drift_detected == (result.p_value < 0.1)
    assert 1 / 21 <= result.p_value <= 1.0
    with pytest.raises(AttributeError):
        result.p_value = 0.5  # type: ignore[misc]


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunked_equals_unchunked(chunk):
    x, y = _pair(4, m=70, n=55, shift=0.1)
    whole = MMDTest(n_permutations=40, seed=5, chunk_size=10_000, device="cpu").test(x, y)
    tiled = MMDTest(n_permutations=40, seed=5, chunk_size=chunk, device="cpu").test(x, y)
    assert whole.chunk_size == 125
    assert tiled.chunk_size == chunk
    assert tiled.mmd2 == pytest.approx(whole.mmd2, rel=1e-12, abs=1e-15)
    assert tiled.p_value == whole.p_value


def test_deterministic_with_a_seed():
    x, y = _pair(5, m=300, n=300)
    # More rows than max_bandwidth_samples, so the bandwidth subsample is seeded as well.
    make = lambda seed: MMDTest(n_permutations=30, seed=seed, max_bandwidth_samples=100)  # noqa: E731
    first, again = make(7).test(x, y), make(7).test(x, y)
    assert first == again
    others = {make(s).test(x, y).bandwidth for s in range(8, 12)}
    assert len(others) > 1  # the seed does drive the subsample


def test_torch_and_numpy_inputs_agree_and_1d_is_one_feature():
    x, y = _pair(6, d=1)
    from_numpy = MMDTest(n_permutations=20).test(x, y)
    from_torch = MMDTest(n_permutations=20).test(torch.from_numpy(x), torch.from_numpy(y))
    from_1d = MMDTest(n_permutations=20).test(x[:, 0], y[:, 0].tolist())
    assert from_numpy == from_torch == from_1d


def test_false_positive_rate_under_the_null_is_plausible():
    p_values = []
    for seed in range(20):
        x, y = _pair(100 + seed, m=80, n=80)
        p_values.append(MMDTest(n_permutations=99, seed=seed).test(x, y).p_value)
    rejections = sum(p < 0.05 for p in p_values)
    # Binomial(20, 0.05): P(X >= 5) ~ 0.003.
    assert rejections <= 4, p_values
    assert 0.3 < float(np.mean(p_values)) < 0.7, p_values


def test_shifted_mean_is_detected():
    x, y = _pair(7, m=200, n=200, shift=0.5)
    result = MMDTest(n_permutations=200, seed=0).test(x, y)
    assert result.p_value < 0.01
    assert result.drift_detected
    assert result.mmd2 > 0


def test_constant_columns_and_duplicates_are_handled():
    rng = np.random.default_rng(8)
    x = np.column_stack([np.ones(50), rng.normal(size=50)])
    y = np.column_stack([np.ones(40), rng.normal(size=40)])
    result = MMDTest(n_permutations=20).test(x, y)
    assert math.isfinite(result.mmd2)
    # All rows identical: every distance is 0, the bandwidth falls back to 1.
    same = np.zeros((30, 2))
    degenerate = MMDTest(n_permutations=20).test(same, same)
    assert degenerate.bandwidth == 1.0
    assert degenerate.mmd2 == pytest.approx(0.0, abs=1e-12)
    assert degenerate.p_value == 1.0


def test_fixed_bandwidth_is_used():
    x, y = _pair(9)
    result = MMDTest(n_permutations=10, bandwidth=0.7).test(x, y)
    xs, ys = _standardise(x, y)
    assert result.bandwidth == 0.7
    assert result.mmd2 == pytest.approx(_naive_mmd2(xs, ys, 0.7), rel=1e-10)


def test_float32_stays_close_to_float64():
    x, y = _pair(10, m=500, n=400, shift=0.2)
    exact = MMDTest(n_permutations=20, seed=1).test(x, y)
    fast = MMDTest(n_permutations=20, seed=1, dtype=torch.float32).test(x, y)
    assert abs(fast.mmd2 - exact.mmd2) < 1e-5
    assert abs(fast.p_value - exact.p_value) <= 2 / 21


@pytest.mark.parametrize(
    ("ref", "cur", "error"),
    [
        (np.zeros((5, 2)), np.zeros((5, 3)), "features"),
        (np.zeros((1, 2)), np.zeros((5, 2)), "at least 2 rows"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), np.zeros((5, 2)), "NaN"),
        (np.zeros((2, 2, 2)), np.zeros((5, 2)), "rows x features"),
    ],
)
def test_bad_inputs_are_rejected(ref, cur, error):
    with pytest.raises(ValueError, match=error):
        MMDTest(n_permutations=5).test(ref, cur)


def test_bad_hyper_parameters_are_rejected():
    with pytest.raises(ValueError):
        MMDTest(n_permutations=-1)
    with pytest.raises(ValueError):
        MMDTest(threshold=1.5)
    with pytest.raises(ValueError):
        MMDTest(bandwidth=0.0)
    with pytest.raises(TypeError):
        MMDTest(n_permutations=5).test(np.array([["a", "b"], ["c", "d"]]), np.zeros((3, 2)))


def test_median_heuristic_subsamples_large_inputs():
    z = torch.from_numpy(np.random.default_rng(12).normal(size=(5000, 4)))
    g = torch.Generator().manual_seed(0)
    sigma = median_heuristic_bandwidth(z, max_samples=500, generator=g)
    # For N(0, I_4) the median distance between two points is about sqrt(2 * 3.357).
    assert sigma == pytest.approx(math.sqrt(2 * 3.357), rel=0.05)


def test_block_size_respects_the_memory_budget():
    for budget in (2**16, 2**20, 2**24, 2**28):
        for perms in (0, 9, 200, 1000):
            test = MMDTest(n_permutations=perms, memory_budget_bytes=budget, device="cpu")
            c = test.block_size(10**6)
            assert 1 <= c <= 1024
            assert 8 * (2 * c * c + 3 * c * (perms + 2)) <= budget or c == 1
    # At 50,000 rows per side the working set is a few hundred MiB, not the 80 GB kernel.
    big = MMDTest(n_permutations=200, device="cpu")
    estimate = big.memory_estimate(50_000, 50_000, 25)
    assert estimate < 400 * 2**20
    assert estimate < (100_000**2 * 8) / 100


_RSS_PROBE = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    import torch
    from detectors.mmd import MMDTest

    n, d, budget = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(n, d)), rng.normal(size=(n, d)) + 0.05
    test = MMDTest(n_permutations=4, seed=0, memory_budget_bytes=budget, device="cpu")
    test.test(x[:200], y[:200])  # warm up torch's allocator and thread pool
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = test.test(x, y)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"growth": after - before, "estimate": test.memory_estimate(n, n, d),
                      "chunk": result.chunk_size, "p": result.p_value}))
    """
)


def test_peak_memory_stays_bounded():
    """8,000 rows per side: the full float64 kernel would be 2 GB; the test peaks far lower.

    The 50,000-per-side run is in `python -m bench.mmd_bench` (too slow for a unit test on two
    cores); the analytic bound for it is checked in test_block_size_respects_the_memory_budget.
    """
    n, d, budget = 8_000, 10, 8 * 2**20
    out = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(n), str(d), str(budget)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    full_kernel = (2 * n) ** 2 * 8
    assert probe["estimate"] < 64 * 2**20
    # The estimate covers what was measured, up to allocator slack.
    assert probe["growth"] < probe["estimate"] + 16 * 2**20, probe
    assert probe["growth"] < 80 * 2**20, probe
    assert probe["growth"] < full_kernel / 50, probe


def test_import_without_torch_names_the_extra():
    code = "import sys; sys.modules['torch'] = None; import detectors.mmd"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode != 0
    assert "ImportError" in out.stderr
    assert "driftwarden[torch]" in out.stderr


def test_no_other_detectors_module_imports_torch():
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        import detectors
        for info in pkgutil.walk_packages(detectors.__path__, "detectors."):
            if info.name != "detectors.mmd" and not info.name.endswith(".__main__"):
                importlib.import_module(info.name)
        print("torch" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


@pytest.mark.gpu
def test_cuda_agrees_with_cpu():
    assert torch.cuda.is_available(), "the gpu marker selects this test on a CUDA machine only"
    x, y = _pair(13, m=3000, n=2500, d=5, shift=0.05)
    cpu = MMDTest(n_permutations=50, seed=2, device="cpu").test(x, y)
    gpu = MMDTest(n_permutations=50, seed=2, device="cuda").test(x, y)
    assert gpu.device.startswith("cuda")
    assert gpu.mmd2 == pytest.approx(cpu.mmd2, rel=1e-10, abs=1e-14)
    assert gpu.p_value == cpu.p_value
    gpu32 = MMDTest(n_permutations=50, seed=2, device="cuda", dtype=torch.float32).test(x, y)
    assert abs(gpu32.mmd2 - cpu.mmd2) < 1e-5

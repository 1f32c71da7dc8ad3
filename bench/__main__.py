"""`python -m bench` (the Makefile's `make bench`): every benchmark, one after the other.

Each benchmark prints its own table; add a call here to include a new one.
"""

from __future__ import annotations

from bench import collector_bench, detectors_bench, drift_bench, injector_bench

if __name__ == "__main__":
    drift_bench.main([])
    collector_bench.main([])
    detectors_bench.main([])
    injector_bench.main([])

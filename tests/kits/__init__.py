"""Helpers used only by tests and benchmarks (never imported by production code)."""

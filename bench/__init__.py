"""Benchmarks; run with `bash scripts/bench`."""

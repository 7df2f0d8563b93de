"""Benchmarks: `make bench` runs them on real processes and writes bench/results/latest.md."""

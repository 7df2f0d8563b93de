"""Small programs the benchmarks compare celery-harder with, each served or run for real."""

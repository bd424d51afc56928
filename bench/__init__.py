"""Benchmarks: measured figures live here, never in tests (`make bench`, `run.py bench`)."""

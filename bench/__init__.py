"""Benchmarks: figures, not pass/fail tests (see docs/streaming.md)."""

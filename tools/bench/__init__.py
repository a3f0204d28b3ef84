"""Benchmark sub-commands of tools/benchmark.py, one module each, plus shared timing helpers."""

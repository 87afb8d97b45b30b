"""Benchmarks are scripts (``python -m tests.bench.<name>``), not tests: pytest collects nothing here.
Timed assertions live only in these scripts, whose figures go to docs/performance.md."""

collect_ignore_glob = ["*.py"]

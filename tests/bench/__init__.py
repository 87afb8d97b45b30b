"""Benchmarks: scripts run by hand or by CI jobs, never collected as tests."""

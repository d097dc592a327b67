"""Benchmarks and fault drills (run as scripts; see README)."""

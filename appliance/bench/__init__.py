"""Benchmarks that print figures: `python -m appliance.bench.<name>` (vision, ...)."""

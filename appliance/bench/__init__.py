"""Benchmarks that print figures: `python -m appliance.bench.<name>`; the pipeline's is `appliance bench`."""

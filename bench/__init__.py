"""Benchmarks run by hand against real services (not tests): `python -m bench.<name> --help`."""

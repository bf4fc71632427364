"""Helpers shared by the test suites: process launching, free ports, waiting for readiness."""

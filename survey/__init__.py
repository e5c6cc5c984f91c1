"""Instruments as data, synthetic responses, settings and the `culture` command line."""

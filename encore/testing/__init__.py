"""Helpers for testing code that uses encore (see :mod:`encore.testing.asserts`)."""

"""Conformance test mixins that any store implementation can reuse."""

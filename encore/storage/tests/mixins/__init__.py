"""The conformance test mixins, one module per mixin.

Import them from :mod:`encore.storage.tests.abstract_test`, which re-exports
every mixin and helper; this package is how that module is laid out.
"""

"""Tools for threaded and other concurrent code.

:mod:`encore.concurrent.threadtools` holds small helpers for common threading
patterns; :mod:`encore.concurrent.futures` holds executors compatible with the
standard :mod:`concurrent.futures` package and *work schedulers* that decide
which of many submitted jobs actually run.
"""

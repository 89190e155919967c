"""Assertions for tests that run Python in a child process.

They help to check behaviour that only shows in a fresh interpreter, such as
what an import does or what happens at interpreter exit.
"""
from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from typing import Tuple

logger = logging.getLogger(__name__)

__all__ = ["assert_python_ok", "strip_python_stderr"]

# Debug builds of CPython print reference counts such as "[8452 refs]" or
# "[8452 refs, 3210 blocks]" on their own line at exit.
_REFS_LINE = re.compile(rb"^\[\d+ refs(?:, \d+ blocks)?\]\r?$\n?", re.MULTILINE)


def strip_python_stderr(stderr: bytes) -> bytes:
    """Remove the noise a debug interpreter adds to its standard error.

    Parameters
    ----------
    stderr : bytes
        The standard error output of a Python process.

    Returns
    -------
    bytes
        The output without ``[N refs]`` lines and without leading or trailing
        whitespace.
    """
    return _REFS_LINE.sub(b"", stderr).strip()


def assert_python_ok(*args: str, **env_vars: str) -> Tuple[int, bytes, bytes]:
    """Run the current Python interpreter and check that it succeeds.

    Parameters
    ----------
    *args : str
        Command-line arguments for the interpreter, e.g. ``'-c', 'import x'``.
    **env_vars : str
        Environment variables to set for the child.  Without any, the child
        inherits this process's environment and runs with ``-E`` (ignoring
        ``PYTHON*`` variables).  With some, the child gets a copy of this
        process's environment updated with them, and no ``-E``.  The special
        keyword ``__cleanenv=True`` starts from an empty environment instead
        of a copy.

    Returns
    -------
    tuple of (int, bytes, bytes)
        The return code, the standard output and the standard error (the
        latter passed through :func:`strip_python_stderr`).

    Raises
    ------
    AssertionError
        If the child exits with a non-zero status; the message includes its
        standard error.

    Examples
    --------
    >>> rc, out, err = assert_python_ok('-c', 'print("hello")')
    >>> out.strip()
    b'hello'
    """
    command = [sys.executable]
    clean_env = bool(env_vars.pop("__cleanenv", False))
    if not env_vars and not clean_env:
        command.append("-E")
    environment = {} if clean_env else dict(os.environ)
    environment.update(env_vars)
    command.extend(args)
    completed = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
    )
    err = strip_python_stderr(completed.stderr)
    if completed.returncode != 0:
        raise AssertionError(
            "Process {!r} returned {}, stderr follows:\n{}".format(
                command, completed.returncode, err.decode("ascii", "backslashreplace")
            )
        )
    return completed.returncode, completed.stdout, err

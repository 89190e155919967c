"""Assertions for tests that run Python in a child process.

They help to check behaviour that only shows in a fresh interpreter, such as
what an import does or what happens at interpreter exit.
"""
from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from typing import Any, Dict, List, Optional, Tuple

logger = logging.getLogger(__name__)

__all__ = ["assert_python_ok", "strip_python_stderr", "DEFAULT_TIMEOUT"]

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


#: How long :func:`assert_python_ok` lets a child run by default, in seconds.
DEFAULT_TIMEOUT = 300.0


def assert_python_ok(*args: str, **env_vars: Any) -> Tuple[int, bytes, bytes]:
    """Run the current Python interpreter and check that it succeeds.

    Parameters
    ----------
    *args : str
        Command-line arguments for the interpreter, e.g. ``'-c', 'import x'``.
    **env_vars : str
        Environment variables to set for the child.  Without any, the child
        inherits this process's environment and runs with ``-E`` (ignoring
        ``PYTHON*`` variables).  With some, the child gets a copy of this
        process's environment updated with them, and no ``-E``.  Two special
        keywords are not environment variables (and do not count as such for
        ``-E``):

        ``__cleanenv=True``
            Start from an empty environment instead of a copy (this does
            count as an environment variable: no ``-E``).
        ``__timeout=seconds``
            The longest time the child may run, :data:`DEFAULT_TIMEOUT`
            (300 s) by default; ``None`` waits for ever.  A child still
            running then is killed (with any process it started in its own
            session) and the call fails.

    Returns
    -------
    tuple of (int, bytes, bytes)
        The return code, the standard output and the standard error (the
        latter passed through :func:`strip_python_stderr`).

    Raises
    ------
    AssertionError
        If the child exits with a non-zero status, or is still running when
        the timeout expires; the message includes its standard error.
    ValueError
        If ``__timeout`` is not a positive number or ``None``.

    Examples
    --------
    >>> rc, out, err = assert_python_ok('-c', 'print("hello")')
    >>> out.strip()
    b'hello'
    >>> rc, out, err = assert_python_ok('-c', 'pass', __timeout=60)
    """
    timeout = env_vars.pop("__timeout", DEFAULT_TIMEOUT)
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
    ):
        raise ValueError("__timeout must be a positive number of seconds or None, got {!r}".format(timeout))
    command = [sys.executable]
    clean_env = bool(env_vars.pop("__cleanenv", False))
    if not env_vars and not clean_env:
        command.append("-E")
    environment = {} if clean_env else dict(os.environ)
    environment.update(env_vars)
    command.extend(args)
    returncode, out, err, timed_out = _run(command, environment, timeout)
    err = strip_python_stderr(err)
    if timed_out:
        raise AssertionError(
            "Process {!r} was still running after {} s and was killed; "
            "stdout so far:\n{}\nstderr so far:\n{}".format(
                command,
                timeout,
                out.decode("ascii", "backslashreplace"),
                err.decode("ascii", "backslashreplace"),
            )
        )
    if returncode != 0:
        raise AssertionError(
            "Process {!r} returned {}, stderr follows:\n{}".format(
                command, returncode, err.decode("ascii", "backslashreplace")
            )
        )
    return returncode, out, err


def _run(command: List[str], environment: Dict[str, str], timeout: Optional[float]) -> Tuple[int, bytes, bytes, bool]:
    """Run ``command``; return its status, outputs and whether it timed out."""
    # In a session of its own, the child and whatever it started can be
    # killed together; a grandchild left alive would keep the pipes open.
    new_session = os.name == "posix"
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
        start_new_session=new_session,
    )
    with process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(process, new_session)
            try:
                out, err = process.communicate(timeout=10)
            except subprocess.TimeoutExpired as exc:
                # Something outside the session still holds the pipes: keep
                # what was read.
                out, err = exc.stdout, exc.stderr  # type: ignore[assignment]
            return process.wait(), out or b"", err or b"", True
        except BaseException:
            # Interrupted (Ctrl-C): do not leave the child behind.
            _kill(process, new_session)
            raise
    return process.returncode, out, err, False


def _kill(process: subprocess.Popen, whole_session: bool) -> None:
    """Kill a child process (and its session, when it has its own)."""
    if whole_session:
        try:
            os.killpg(process.pid, signal.SIGKILL)
            return
        except OSError:
            pass
    try:
        process.kill()
    except OSError:
        pass

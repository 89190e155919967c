"""encore.testing.asserts."""
import os
import sys

import pytest

from encore.testing.asserts import assert_python_ok, strip_python_stderr


def test_success_returns_code_and_outputs():
    rc, out, err = assert_python_ok("-c", "import sys; print('hello'); sys.stderr.write('  note  \\n')")
    assert rc == 0
    assert out.strip() == b"hello"
    assert err == b"note"


def test_failure_raises_assertion_error_with_stderr():
    with pytest.raises(AssertionError) as info:
        assert_python_ok("-c", "raise SystemExit('boom from child')")
    assert "boom from child" in str(info.value)
    with pytest.raises(AssertionError):
        assert_python_ok("-c", "import sys; sys.exit(3)")


def test_runs_the_current_interpreter():
    _, out, _ = assert_python_ok("-c", "import sys; print(sys.executable)")
    assert out.decode().strip() == sys.executable


def test_ignores_python_variables_without_env():
    _, out, _ = assert_python_ok("-c", "import sys; print(sys.flags.ignore_environment)")
    assert out.strip() == b"1"


def test_env_variables_are_added_and_disable_dash_e(monkeypatch):
    monkeypatch.setenv("ENCORE_TEST_INHERITED", "inherited")
    _, out, _ = assert_python_ok(
        "-c",
        "import os, sys; print(sys.flags.ignore_environment, os.environ['ENCORE_TEST_ADDED'],"
        " os.environ.get('ENCORE_TEST_INHERITED'))",
        ENCORE_TEST_ADDED="added",
    )
    assert out.split() == [b"0", b"added", b"inherited"]
    assert "ENCORE_TEST_ADDED" not in os.environ


def test_clean_environment(monkeypatch):
    monkeypatch.setenv("ENCORE_TEST_INHERITED", "inherited")
    _, out, _ = assert_python_ok(
        "-c",
        "import os; print(sorted(k for k in os.environ if k.startswith('ENCORE_TEST')))",
        __cleanenv=True,
        ENCORE_TEST_ONLY="x",
    )
    assert out.strip() == b"['ENCORE_TEST_ONLY']"


def test_strip_python_stderr():
    noisy = b"Traceback\n[1234 refs]\nValueError: x\n[56 refs, 78 blocks]\n  \n"
    assert strip_python_stderr(noisy) == b"Traceback\nValueError: x"
    assert strip_python_stderr(b"  plain  ") == b"plain"
    assert strip_python_stderr(b"") == b""
    # Lines that merely mention refs are kept.
    assert strip_python_stderr(b"see [12 refs] here") == b"see [12 refs] here"

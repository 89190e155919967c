"""encore.testing.asserts."""
import os
import re
import sys
import time

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


# The __timeout keyword ---------------------------------------------------


def test_timeout_is_not_an_environment_variable():
    # Given alone it keeps -E (no environment variable was given) and is not
    # passed to the child.
    _, out, _ = assert_python_ok(
        "-c",
        "import os, sys; print(sys.flags.ignore_environment, '__timeout' in os.environ)",
        __timeout=60,
    )
    assert out.split() == [b"1", b"False"]
    _, out, _ = assert_python_ok("-c", "print('no limit')", __timeout=None)
    assert out.strip() == b"no limit"


def test_timeout_kills_a_hung_child_and_reports_its_output():
    # The markers are built by the child, so finding them in the message
    # proves they come from its output, not from the command line.
    code = (
        "import sys, time\n"
        "print('out' + '-marker', flush=True)\n"
        "sys.stderr.write('err' + '-marker\\n'); sys.stderr.flush()\n"
        "time.sleep(120)\n"
    )
    with pytest.raises(AssertionError) as info:
        assert_python_ok("-c", code, __timeout=1)
    message = str(info.value)
    assert "still running after 1 s" in message
    assert "out-marker" in message
    assert "err-marker" in message


def _is_gone(pid):
    """Whether process ``pid`` has ended (a zombie waiting to be reaped counts)."""
    try:
        with open("/proc/{}/stat".format(pid)) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.skipif(
    not (os.name == "posix" and os.path.isdir("/proc/self")),
    reason="needs POSIX sessions and /proc to watch the grandchild",
)
def test_timeout_also_kills_what_the_child_started():
    code = (
        "import subprocess, sys, time\n"
        "grandchild = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "print('grandchild' + '-pid=%d' % grandchild.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    with pytest.raises(AssertionError) as info:
        assert_python_ok("-c", code, __timeout=2)
    pid = int(re.search(r"grandchild-pid=(\d+)", str(info.value)).group(1))
    # SIGKILL has been sent to the whole session; its delivery is
    # asynchronous, so give it a moment (bounded) before judging.
    deadline = time.monotonic() + 10
    while not _is_gone(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    gone = _is_gone(pid)
    if not gone:
        os.kill(pid, 9)
    assert gone


@pytest.mark.parametrize("bad", [0, -1, "10", True])
def test_bad_timeouts_are_refused(bad):
    with pytest.raises(ValueError):
        assert_python_ok("-c", "pass", __timeout=bad)


def test_default_timeout_is_generous():
    from encore.testing import asserts

    assert asserts.DEFAULT_TIMEOUT >= 60

"""Encore's module ``encore.terminal.utils``."""
import io
import sys

from encore.terminal import api, progress_display, utils


def test_write_static_writes_backspaced_text_to_stdout(capsys):
    utils.write_static("42%")
    assert capsys.readouterr().out == "\b42%\b\b\b"


def test_write_static_flushes():
    class Recording(io.StringIO):
        flushed = 0

        def flush(self):
            self.flushed += 1
            super().flush()

    stream = Recording()
    saved = sys.stdout
    sys.stdout = stream
    try:
        utils.write_static("ab")
    finally:
        sys.stdout = saved
    assert stream.getvalue() == "\bab\b\b"
    assert stream.flushed == 1


def test_one_implementation_everywhere():
    assert api.write_static is utils.write_static
    assert progress_display.write_static is utils.write_static
    assert utils.__all__ == ["write_static"]

"""Tests of encore.terminal: ProgressDisplay, its writers and write_static."""
import io
import threading

import pytest

from encore.events import package_globals
from encore.events.api import (
    EventManager,
    ProgressEndEvent,
    ProgressManager,
    ProgressStartEvent,
    ProgressStepEvent,
)
from encore.terminal import api
from encore.terminal.progress_display import (
    ProgressDisplay,
    ProgressWriter,
    SpinWriter,
    write_static,
)

BAR = 30


def render(text):
    """What a terminal shows for ``text``: handles \\n, \\r and \\b."""
    lines, line, column = [], [], 0
    for char in text:
        if char == "\n":
            lines.append("".join(line))
            line, column = [], 0
        elif char == "\r":
            column = 0
        elif char == "\b":
            column = max(0, column - 1)
        else:
            if column < len(line):
                line[column] = char
            else:
                line.append(char)
            column += 1
    lines.append("".join(line))
    return lines


def bar_line(step, steps):
    """The line expected for ``step`` of ``steps`` when no rate is known yet."""
    fraction = max(0.0, min(1.0, step / steps))
    filled = int(round(fraction * BAR))
    return "%3d%% [%s]  %d/%d" % (int(fraction * 100), ("*" * filled).ljust(BAR), step, steps)


def frozen_clock():
    return 1000.0


class EveryStepProgressWriter(ProgressWriter):
    min_interval = 0
    clock = staticmethod(frozen_clock)


class EveryStepSpinWriter(SpinWriter):
    min_interval = 0
    clock = staticmethod(frozen_clock)


class UnthrottledDisplay(ProgressDisplay):
    progress_writer = EveryStepProgressWriter
    spin_writer = EveryStepSpinWriter


@pytest.fixture
def manager():
    return EventManager()


@pytest.fixture
def stream():
    return io.StringIO()


@pytest.fixture
def display(manager, stream):
    return UnthrottledDisplay(manager, stream, animate=True)


def test_api_reexports():
    assert api.ProgressDisplay is ProgressDisplay
    assert api.ProgressWriter is ProgressWriter
    assert api.SpinWriter is SpinWriter
    assert api.write_static is write_static
    assert sorted(api.__all__) == ["ProgressDisplay", "ProgressWriter", "SpinWriter", "write_static"]


def test_write_static_to_a_stream():
    stream = io.StringIO()
    write_static("abc", stream)
    assert stream.getvalue() == "\babc\b\b\b"


def test_write_static_defaults_to_stdout(capsys):
    write_static("hi")
    assert capsys.readouterr().out == "\bhi\b\b"


def test_determinate_progress(manager, stream, display):
    with ProgressManager(manager, message="Copying files", steps=4, operation_id="op") as progress:
        assert isinstance(display.writers["op"], EveryStepProgressWriter)
        for step in range(1, 5):
            progress.step(step=step)
    output = stream.getvalue()
    assert output.startswith("Copying files:\n")
    # Every step redrew the line in place.
    for step in range(1, 5):
        assert "\r" + bar_line(step, 4) in output
    assert " 25% [" + "*" * 8 + " " * 22 + "]  1/4" in output
    assert render(output) == ["Copying files:", bar_line(4, 4), "Done.", ""]
    assert display.writers == {}


def test_bar_is_drawn_full_at_a_normal_end_even_without_steps(manager, stream, display):
    with ProgressManager(manager, message="Quick", steps=10):
        pass
    assert render(stream.getvalue()) == ["Quick:", bar_line(10, 10), "Done.", ""]


def test_bar_is_clamped(manager, stream, display):
    progress = ProgressManager(manager, message="Over", steps=2)
    progress.start()
    progress.step(step=5)
    assert render(stream.getvalue())[-1] == bar_line(5, 2)
    progress.step(step=-1)
    assert render(stream.getvalue())[-1] == bar_line(-1, 2)
    progress.end()


@pytest.mark.parametrize("exit_state", ["warning", "error"])
def test_determinate_progress_ending_badly(manager, stream, display, exit_state):
    progress = ProgressManager(manager, message="Uploading", steps=4)
    progress.start()
    progress.step(step=1)
    progress.end(message="disk full", exit_state=exit_state)
    assert render(stream.getvalue()) == [
        "Uploading:",
        bar_line(1, 4),
        "%s: disk full" % exit_state.upper(),
        "",
    ]
    assert display.writers == {}


def test_exception_in_a_progress_block(manager, stream, display):
    with pytest.raises(ValueError):
        with ProgressManager(manager, message="Parsing", steps=3) as progress:
            progress.step(step=1)
            raise ValueError("bad token")
    assert render(stream.getvalue())[-2:] == ["EXCEPTION: bad token", ""]


def test_indeterminate_progress(manager, stream, display):
    with ProgressManager(manager, message="Scanning", operation_id="scan") as progress:
        assert isinstance(display.writers["scan"], EveryStepSpinWriter)
        for name in ["a.txt", "b.txt", "c.txt", "d.txt", "e.txt"]:
            progress(name)
    output = stream.getvalue()
    assert output.startswith("Scanning:\n")
    for char, name in zip("\\|/-\\", ["a.txt", "b.txt", "c.txt", "d.txt", "e.txt"]):
        assert "\r%s %s" % (char, name.ljust(70)) in output
    assert render(output) == ["Scanning:", "\\ %s Done." % "e.txt".ljust(70), ""]
    assert display.writers == {}


def test_spinner_cuts_long_messages(manager, stream, display):
    with ProgressManager(manager, message="Long") as progress:
        progress("x" * 100)
    line = render(stream.getvalue())[1]
    assert line == "\\ " + "x" * 70 + " Done."


def test_indeterminate_progress_ending_badly(manager, stream, display):
    progress = ProgressManager(manager, message="Fetching")
    progress.start()
    progress("page 1")
    progress.end(message="timed out", exit_state="error")
    assert render(stream.getvalue()) == ["Fetching:", "\\ " + "page 1".ljust(70), "ERROR: timed out", ""]


def test_end_without_any_step_does_not_leave_a_blank_line(manager, stream, display):
    progress = ProgressManager(manager, message="Nothing")
    progress.start()
    progress.end(message="gave up", exit_state="warning")
    assert stream.getvalue() == "Nothing:\nWARNING: gave up\n"


def test_interleaved_operations_have_their_own_writers(manager, stream, display):
    first = ProgressManager(manager, message="First", steps=2, operation_id=1)
    second = ProgressManager(manager, message="Second", operation_id=2)
    first.start()
    second.start()
    assert set(display.writers) == {1, 2}
    first.step(step=1)
    second("working")
    first.end()
    assert set(display.writers) == {2}
    second.end()
    output = stream.getvalue()
    assert "\r" + bar_line(1, 2) in output
    assert "\r\\ " + "working".ljust(70) in output
    assert display.writers == {}


def test_listeners_are_filtered_by_operation_and_removed_at_the_end(manager, stream, display):
    progress = ProgressManager(manager, message="Job", steps=2, operation_id="mine")
    progress.start()
    manager.emit(ProgressStepEvent(operation_id="other", message="x", step=2))
    assert stream.getvalue() == "Job:\n"
    progress.end()
    finished = stream.getvalue()
    # The writer is gone: late events for the operation print nothing.
    manager.emit(ProgressStepEvent(operation_id="mine", message="late", step=1))
    manager.emit(ProgressEndEvent(operation_id="mine", message="late", exit_state="normal"))
    assert stream.getvalue() == finished
    assert list(manager.get_listeners(ProgressStepEvent(operation_id="mine"))) == []


def test_redraws_are_throttled(manager, stream):
    class FakeClock:
        now = 100.0

        def __call__(self):
            return self.now

    clock = FakeClock()

    class ClockedWriter(ProgressWriter):
        pass

    ClockedWriter.clock = clock

    class ClockedDisplay(ProgressDisplay):
        progress_writer = ClockedWriter

    display = ClockedDisplay(manager, stream, animate=True)
    progress = ProgressManager(manager, message="Throttled", steps=100)
    progress.start()
    progress.step(step=1)  # drawn: first draw
    progress.step(step=2)  # skipped: same instant
    clock.now += 0.01
    progress.step(step=3)  # skipped: too soon
    clock.now += 0.05
    progress.step(step=4)  # drawn
    output = stream.getvalue()
    assert output.count("\r") == 2
    assert "\r" + bar_line(1, 100) in output
    assert "\r" + bar_line(4, 100) in output
    progress.end()  # the final bar is always drawn
    assert render(stream.getvalue())[-3:] == [bar_line(100, 100), "Done.", ""]
    assert display.writers == {}


def test_default_writers_and_throttle():
    assert ProgressDisplay.progress_writer is ProgressWriter
    assert ProgressDisplay.spin_writer is SpinWriter
    assert ProgressWriter.min_interval == SpinWriter.min_interval == 0.05
    assert ProgressWriter.bar_width == BAR


def test_subclass_progress_events_are_shown(manager, stream, display):
    class CopyStart(ProgressStartEvent):
        pass

    class CopyStep(ProgressStepEvent):
        pass

    class CopyEnd(ProgressEndEvent):
        pass

    manager.emit(CopyStart(operation_id="c", message="Copy", steps=1))
    manager.emit(CopyStep(operation_id="c", message="Copy", step=1))
    manager.emit(CopyEnd(operation_id="c", message="Copy", exit_state="normal"))
    assert render(stream.getvalue()) == ["Copy:", bar_line(1, 1), "Done.", ""]


def test_default_stream_is_stdout(manager, capsys):
    display = UnthrottledDisplay(manager, animate=True)
    assert display.stream is __import__("sys").stdout
    with ProgressManager(manager, message="To stdout", steps=1) as progress:
        progress.step(step=1)
    assert render(capsys.readouterr().out) == ["To stdout:", bar_line(1, 1), "Done.", ""]


def test_default_event_manager_is_the_package_one(stream):
    saved = package_globals._event_manager
    package_globals._event_manager = None
    try:
        display = UnthrottledDisplay(stream=stream, animate=True)
        assert display.event_manager is package_globals.get_event_manager()
        with ProgressManager(message="Global", steps=1):
            pass
        assert stream.getvalue().startswith("Global:\n")
    finally:
        package_globals._event_manager = saved


def test_disconnect_stops_all_output(manager, stream, display):
    progress = ProgressManager(manager, message="Half", steps=2)
    progress.start()
    display.disconnect()
    before = stream.getvalue()
    progress.step(step=1)
    progress.end()
    ProgressManager(manager, message="Later", steps=2).start()
    assert stream.getvalue() == before == "Half:\n"
    assert display.writers == {}


def test_steps_from_many_threads(manager, stream, display):
    progress = ProgressManager(manager, message="Parallel", steps=400)
    progress.start()
    barrier = threading.Barrier(4)

    def stepper(offset):
        barrier.wait(10)
        for i in range(100):
            progress.step(step=offset + i)

    threads = [threading.Thread(target=stepper, args=(n * 100,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()
    progress.end()
    output = stream.getvalue()
    # 400 redraws, never interleaved mid-line, then the final bar and Done.
    assert output.count("\r") == 401
    drawn = [chunk.split("\n")[0].rstrip() for chunk in output.split("\r")[1:]]
    assert all(line == bar_line(int(line.rsplit(" ", 1)[1].split("/")[0]), 400) for line in drawn)
    assert render(output)[-3:] == [bar_line(400, 400), "Done.", ""]


def test_full_bar_is_not_drawn_twice_at_the_end(manager, stream, display):
    with ProgressManager(manager, message="Once", steps=2, operation_id="op") as progress:
        progress.step(step=1)
        progress.step(step=2)
    assert stream.getvalue().count("\r" + bar_line(2, 2)) == 1
    assert render(stream.getvalue()) == ["Once:", bar_line(2, 2), "Done.", ""]


def test_spinner_ends_on_the_last_message_even_when_steps_come_fast(manager, stream):
    display = ProgressDisplay(manager, stream, animate=True)  # throttled: real 0.05 s spacing
    progress = ProgressManager(manager, message="Scanning", steps=-1)
    progress.start()
    for name in ("a.txt", "b.txt", "c.txt"):
        progress.step(message=name)  # all within one throttle window
    progress.end()
    lines = render(stream.getvalue())
    assert lines[0] == "Scanning:"
    assert lines[1].rstrip().endswith("Done.")
    assert "c.txt" in lines[1] and "a.txt" not in lines[1]
    assert display.writers == {}


# -- figures: percent, units, rate, time left; terminals and other streams ----

from encore.storage.utils import StoreProgressManager  # noqa: E402
from encore.terminal.progress_display import format_duration, format_size  # noqa: E402


class SteppedClock:
    """A clock the test moves by hand."""

    def __init__(self, now=50.0):
        self.now = now

    def __call__(self):
        return self.now


def clocked_display(manager, stream, clock, animate):
    class Writer(ProgressWriter):
        min_interval = 0

    class Spinner(SpinWriter):
        min_interval = 0

    Writer.clock = Spinner.clock = clock

    class Display(ProgressDisplay):
        progress_writer = Writer
        spin_writer = Spinner

    return Display(manager, stream, animate=animate)


class TerminalStream(io.StringIO):
    def isatty(self):
        return True


def test_format_size_and_duration():
    assert format_size(0) == "0 B"
    assert format_size(1023) == "1023 B"
    assert format_size(1024) == "1.0 KiB"
    assert format_size(1536) == "1.5 KiB"
    assert format_size(5 * 1024 ** 2 + 300 * 1024) == "5.3 MiB"
    assert format_size(200 * 1024 ** 3) == "200 GiB"
    assert format_duration(7.4) == "0:07"
    assert format_duration(750) == "12:30"
    assert format_duration(7500) == "2:05:00"
    assert format_duration(-3) == "0:00"


def test_bytes_show_percent_units_rate_and_time_left(manager, stream):
    clock = SteppedClock()
    display = clocked_display(manager, stream, clock, animate=True)
    total = 10 * 1024 ** 2
    progress = ProgressManager(manager, message="Upload", steps=total, units="bytes")
    progress.start()
    clock.now += 2.0
    progress.step(step=4 * 1024 ** 2)  # 2 MiB/s, 6 MiB left: 3 s
    line = render(stream.getvalue())[-1]
    assert line == " 40% [" + "*" * 12 + " " * 18 + "]  4.0 MiB/10.0 MiB  2.0 MiB/s  ETA 0:03"
    clock.now += 3.0
    progress.end()
    lines = render(stream.getvalue())
    assert lines[-3].startswith("100% [" + "*" * BAR + "]  10.0 MiB/10.0 MiB  2.0 MiB/s")
    assert "ETA" not in lines[-3] and lines[-2:] == ["Done.", ""]
    assert display.event_manager is manager  # the display was held until here


def test_store_progress_events_count_bytes(manager, stream):
    clock = SteppedClock()
    display = clocked_display(manager, stream, clock, animate=True)
    with StoreProgressManager(event_manager=manager, message="Setting big", steps=3000,
                              key="big", metadata={}) as progress:
        progress.step(step=1000)
    output = stream.getvalue()
    assert "\r 33% [" in output and "]  1000 B/2.9 KiB" in output
    assert display.writers == {}


def test_other_units_are_named(manager, stream):
    clock = SteppedClock()
    display = clocked_display(manager, stream, clock, animate=True)
    progress = ProgressManager(manager, message="Copying", steps=8, units="keys")
    progress.start()
    clock.now += 1.0
    progress.step(message="1.0 MiB copied", step=2)
    line = render(stream.getvalue())[-1]
    assert line == " 25% [" + "*" * 8 + " " * 22 + "]  2/8 keys  2.0 keys/s  ETA 0:03  1.0 MiB copied"
    assert display.event_manager is manager  # the display was held until here


def test_a_shorter_line_blanks_out_the_longer_one_before_it(manager, stream):
    clock = SteppedClock()
    display = clocked_display(manager, stream, clock, animate=True)
    progress = ProgressManager(manager, message="Work", steps=10)
    progress.start()
    progress.step(message="a long step message", step=1)
    progress.step(step=2)
    chunks = stream.getvalue().split("\r")
    assert len(chunks[2]) == len(chunks[1])
    assert render(stream.getvalue())[-1].rstrip() == bar_line(2, 10)
    assert display.event_manager is manager  # the display was held until here


def test_spinner_with_bytes_shows_the_amount(manager, stream):
    clock = SteppedClock()
    display = clocked_display(manager, stream, clock, animate=True)
    progress = ProgressManager(manager, message="Reading", units="bytes")
    progress.start()
    clock.now += 1.0
    progress.step(message="stdin", step=3 * 1024 ** 2)
    assert render(stream.getvalue())[-1].rstrip() == "\\ 3.0 MiB  3.0 MiB/s  stdin"
    assert display.event_manager is manager  # the display was held until here


def test_not_a_terminal_means_one_line_per_operation_at_the_end(manager):
    stream = io.StringIO()  # not a terminal
    clock = SteppedClock()
    display = clocked_display(manager, stream, clock, animate=None)
    progress = ProgressManager(manager, message="Upload k", steps=4096, units="bytes")
    progress.start()
    for step in (1024, 2048, 4096):
        progress.step(step=step)
    assert stream.getvalue() == ""  # no animation, not even a first line
    clock.now += 2.0
    progress.end()
    assert stream.getvalue() == "Upload k: done, 4.0 KiB in 2.0 s (2.0 KiB/s)\n"
    spinner = ProgressManager(manager, message="Scan")
    spinner.start()
    spinner.step(message="a")
    spinner.end(message="no disk", exit_state="error")
    assert stream.getvalue().endswith("Scan: ERROR: no disk\n")
    assert "\r" not in stream.getvalue() and "\b" not in stream.getvalue()
    assert display.writers == {}


def test_an_early_normal_end_says_how_far_it_got(manager):
    stream = io.StringIO()
    clock = SteppedClock()
    display = clocked_display(manager, stream, clock, animate=False)
    progress = ProgressManager(manager, message="Copy", steps=10, units="keys")
    progress.start()
    progress.step(step=3)
    clock.now += 1.0
    progress.end()
    assert stream.getvalue() == "Copy: done, 3 of 10 keys in 1.0 s (3.0 keys/s)\n"
    single = ProgressManager(manager, message="One", steps=1, units="keys")
    single.start()
    single.step(step=1)
    single.end()
    assert stream.getvalue().endswith("One: done, 1 key in 0.0 s\n")  # no rate over no time
    assert display.event_manager is manager  # the display was held until here


def test_a_terminal_is_animated_by_default(manager):
    stream = TerminalStream()
    display = ProgressDisplay(manager, stream)
    with ProgressManager(manager, message="Anim", steps=2) as progress:
        progress.step(step=1)
    assert stream.getvalue().startswith("Anim:\n\r")
    assert render(stream.getvalue())[-2:] == ["Done.", ""]
    assert display.writers == {}


def test_lines_are_cut_to_the_terminal_width(manager, monkeypatch):
    import os
    import shutil

    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=None: os.terminal_size((41, 24)))
    stream = TerminalStream()
    display = ProgressDisplay(manager, stream)
    with ProgressManager(manager, message="Narrow", steps=1000, units="bytes") as progress:
        progress.step(message="x" * 100, step=10)
    assert all(len(line) <= 40 for line in render(stream.getvalue()))
    assert display.event_manager is manager  # the display was held until here


def test_forget_ends_the_line_and_writes_nothing_more(manager, stream, display):
    progress = ProgressManager(manager, message="Failing", steps=4, operation_id="f")
    progress.start()
    progress.step(step=1)
    display.forget("f")
    display.forget("unknown")  # ignored
    before = stream.getvalue()
    assert before.endswith("\n") and display.writers == {}
    progress.end(message="boom", exit_state="exception")
    assert stream.getvalue() == before

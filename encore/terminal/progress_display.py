"""Progress bars and spinners for text terminals, driven by progress events.

A :class:`ProgressDisplay` connects to an event manager and, for every
operation that emits a
:class:`~encore.events.progress_events.ProgressStartEvent`, creates a
*writer* for it:

* a :class:`ProgressWriter` (a bar with the percentage, the amount done and
  the total, the rate and the time left) when the start event announces a
  number of steps (``steps > 0``);
* a :class:`SpinWriter` (a spinning character, the amount done and the
  latest message) when the number of steps is unknown.

The writer follows the operation's
:class:`~encore.events.progress_events.ProgressStepEvent` and
:class:`~encore.events.progress_events.ProgressEndEvent` (matched by
``operation_id``) and removes itself when the operation ends.

Units
-----
The steps of the stores' progress events
(:class:`~encore.storage.events.StoreProgressEvent`) count bytes, so they are
shown in binary units (``KiB``, ``MiB`` ...).  Any other start event may say
what its steps count with a ``units`` attribute (``units="bytes"``, or a
word such as ``"keys"``); a :class:`~encore.events.progress_events.ProgressManager`
passes extra keyword arguments on to its events, so
``ProgressManager(manager, message="Upload", steps=size, units="bytes")``
is enough.

Terminals and other streams
---------------------------
On a terminal (``stream.isatty()`` true) the display *animates*: it writes
``"<message>:"`` when an operation starts, redraws the bar in place with a
carriage return and ends with ``Done.``.  On anything else (a file, a pipe,
a CI log) it draws no animation: it writes one line per operation when the
operation ends, such as ``Copying: done, 12.0 MiB in 3.1 s (3.9 MiB/s)``.
The ``animate`` argument forces either behaviour.

Example
-------
::

    from encore.events.api import EventManager, ProgressManager
    from encore.terminal.api import ProgressDisplay

    events = EventManager()
    display = ProgressDisplay(events)          # keep a reference to it
    with ProgressManager(events, message="Copying", steps=3) as progress:
        for i in range(1, 4):
            progress.step(step=i)

prints ``Copying:``, a bar that fills up, and ``Done.`` on a terminal.
"""
from __future__ import annotations

import logging
import shutil
import sys
import threading
import time
from typing import Any, Callable, Dict, Optional, TextIO

from encore.events.abstract_event_manager import BaseEventManager
from encore.events.progress_events import (
    ProgressEndEvent,
    ProgressStartEvent,
    ProgressStepEvent,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ProgressDisplay",
    "ProgressWriter",
    "SpinWriter",
    "write_static",
    "format_size",
    "format_duration",
]

_SIZE_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def format_size(size: float) -> str:
    """Return a number of bytes in binary units, for people.

    Parameters
    ----------
    size : int or float
        A number of bytes.

    Returns
    -------
    str
        ``'512 B'``, ``'1.5 KiB'``, ``'12.3 MiB'`` ...: three significant
        figures at most above 1 KiB.

    Examples
    --------
    >>> format_size(1536)
    '1.5 KiB'
    >>> format_size(10 * 1024 ** 2)
    '10.0 MiB'
    """
    size = float(size)
    if abs(size) < 1024:
        return "%d B" % size
    for unit in _SIZE_UNITS:
        size /= 1024.0
        if abs(size) < 1024 or unit == _SIZE_UNITS[-1]:
            break
    if abs(size) >= 100:
        return "%.0f %s" % (size, unit)
    return "%.1f %s" % (size, unit)


def format_duration(seconds: float) -> str:
    """Return a duration as ``M:SS`` or ``H:MM:SS``.

    Parameters
    ----------
    seconds : float
        The duration; negative values count as zero.

    Returns
    -------
    str
        For example ``'0:07'``, ``'12:30'`` or ``'2:05:00'``.
    """
    total = int(round(max(0.0, seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return "%d:%02d:%02d" % (hours, minutes, secs)
    return "%d:%02d" % (minutes, secs)


from .utils import write_static  # noqa: E402  (its home is encore.terminal.utils)


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except (ValueError, OSError):  # a closed stream
        return False


class _Writer(object):
    """What the two writers share: the display, the operation and redrawing."""

    #: Redraws closer together than this many seconds are skipped (the
    #: final drawing at the end of the operation is never skipped).
    min_interval = 0.05
    #: The clock used to space redraws out and to measure rates (a
    #: monotonic clock, in seconds).
    clock = staticmethod(time.monotonic)
    #: Rates and times left are shown once the operation has run this long
    #: (in seconds); earlier figures would be noise.
    rate_after = 0.5
    #: Each writer's listener for the step events of its operation.
    step_listener: Callable[[ProgressStepEvent], None]

    def __init__(self, display: "ProgressDisplay", operation_id: Any) -> None:
        self.display = display
        self.operation_id = operation_id
        #: What the steps count: ``'bytes'``, another word, or ``None``.
        self.units: Optional[str] = None
        #: The message of the start event.
        self.message = ""
        #: Whether lines are redrawn in place (see :class:`ProgressDisplay`).
        self.animate = True
        #: The latest step reached.
        self.step: float = 0
        self.started = self.clock()
        self._last_draw: Optional[float] = None
        # Whether the cursor sits at the end of a line this writer drew.
        self._line_open = False
        # The line on screen, so that the end does not draw it again.
        self._last_line: Optional[str] = None

    # -- figures -----------------------------------------------------------

    def _elapsed(self) -> float:
        return max(0.0, self.clock() - self.started)

    def _amount(self, count: float) -> str:
        if self.units == "bytes":
            return format_size(count)
        text = "%d" % count
        if not self.units:
            return text
        units = self.units
        if count == 1 and len(units) > 1 and units.endswith("s"):
            units = units[:-1]  # "1 key", not "1 keys"
        return text + " " + units

    def _rate(self, step: float) -> Optional[float]:
        elapsed = self._elapsed()
        if elapsed < self.rate_after or step <= 0:
            return None
        return step / elapsed

    def _format_rate(self, rate: float) -> str:
        if self.units == "bytes":
            return format_size(rate) + "/s"
        if rate >= 10:
            text = "%.0f" % rate
        else:
            text = "%.1f" % rate
        return text + (" " + self.units if self.units else "") + "/s"

    # -- drawing -----------------------------------------------------------

    def _active(self) -> bool:
        # False once removed: a step event dispatched concurrently with the
        # end event must not draw after the final line.
        return self.display.writers.get(self.operation_id) is self

    def _due(self) -> bool:
        now = self.clock()
        if self._last_draw is not None and now - self._last_draw < self.min_interval:
            return False
        self._last_draw = now
        return True

    def _draw(self, line: str) -> None:
        width = self.display._line_width()
        if width is not None and len(line) > width:
            line = line[:width]
        shown = line
        if self._last_line is not None and len(self._last_line) > len(line):
            # Blank out what is left of a longer previous line.
            shown = line + " " * (len(self._last_line) - len(line))
        self.display._write("\r" + shown)
        self._line_open = True
        self._last_line = line

    def _finish(self, event: ProgressEndEvent) -> None:
        exit_state = getattr(event, "exit_state", "normal")
        message = getattr(event, "message", "")
        if not self.animate:
            if exit_state == "normal":
                summary = self._summary()
                self.display._write("{}: done{}\n".format(self.message, ", " + summary if summary else ""))
            else:
                self.display._write("{}: {}: {}\n".format(self.message, str(exit_state).upper(), message))
        elif exit_state == "normal":
            self._finish_normally(event)
        else:
            self.display._write(
                "{}{}: {}\n".format("\n" if self._line_open else "", str(exit_state).upper(), message)
            )
        self._line_open = False
        self.display._remove_writer(self)

    def _summary(self) -> str:
        """The figures of the one line written when not animating."""
        elapsed = self._elapsed()
        if self.step <= 0 and not self.units:
            return "in {:.1f} s".format(elapsed)
        text = "{} in {:.1f} s".format(self._summary_amount(), elapsed)
        if elapsed > 0 and self.step > 0 and self.units:
            text += " ({})".format(self._format_rate(self.step / elapsed))
        return text

    def _summary_amount(self) -> str:
        return self._amount(self.step) if self.units else "%d steps" % self.step

    def _finish_normally(self, event: ProgressEndEvent) -> None:
        raise NotImplementedError

    def end_listener(self, event: ProgressEndEvent) -> None:
        """Finish the display of the operation and remove this writer.

        Parameters
        ----------
        event : ProgressEndEvent
            The end event of the operation.  With ``exit_state`` other than
            ``'normal'``, a line ``"<EXIT_STATE>: <message>"`` is written.
        """
        with self.display._lock:
            if self._active():
                self._finish(event)


class ProgressWriter(_Writer):
    """Draws a progress bar for an operation with a known number of steps.

    The line shows the percentage done, a bar of :attr:`bar_width` columns
    filled with ``*`` in proportion to ``step / steps``, the amount done
    and the total (in ``KiB``/``MiB``... when the steps count bytes), and,
    once the operation has run for :attr:`rate_after` seconds, the rate and
    the estimated time left::

         42% [************                  ] 4.2 MiB/10.0 MiB  1.1 MiB/s  ETA 0:05

    When the operation ends normally the full bar is drawn, followed by a
    line ``Done.``.  When the display does not animate, nothing is drawn
    until the end, and then a single summary line.

    Parameters
    ----------
    display : ProgressDisplay
        The display that owns this writer, and whose stream it writes to.
    operation_id : object
        The operation followed.
    steps : int
        The number of steps of the operation (positive).
    """

    #: The width of the bar, in characters.
    bar_width = 30
    #: The latest step reached: a whole number of steps here.
    step: int

    def __init__(self, display: "ProgressDisplay", operation_id: Any, steps: int) -> None:
        super().__init__(display, operation_id)
        self.steps = steps
        self._step_message = ""

    def format_line(self, step: int) -> str:
        """Return the line drawn for a step.

        Parameters
        ----------
        step : int
            The step reached.

        Returns
        -------
        str
            The percentage, the bar (clamped to its width), the amount done
            out of the total, then the rate and time left when known, then
            the latest step's message if it differs from the operation's.
        """
        fraction = step / float(self.steps) if self.steps > 0 else 0.0
        fraction = max(0.0, min(1.0, fraction))
        filled = int(round(fraction * self.bar_width))
        parts = [
            "%3d%% [%-*s]" % (int(fraction * 100), self.bar_width, "*" * filled),
            self._counts(step),
        ]
        rate = self._rate(step)
        if rate is not None:
            parts.append(self._format_rate(rate))
            if step < self.steps:
                parts.append("ETA " + format_duration((self.steps - step) / rate))
        if self._step_message and self._step_message != self.message:
            parts.append(self._step_message)
        return "  ".join(parts)

    def _counts(self, step: int) -> str:
        if self.units == "bytes":
            return "%s/%s" % (format_size(step), format_size(self.steps))
        text = "%d/%d" % (step, self.steps)
        return text + " " + self.units if self.units else text

    def step_listener(self, event: ProgressStepEvent) -> None:
        """Redraw the bar for a step event (unless redrawn very recently).

        Parameters
        ----------
        event : ProgressStepEvent
            A step of the operation; its ``step`` attribute sets the bar.
        """
        with self.display._lock:
            if not self._active():
                return
            self.step = int(getattr(event, "step", 0) or 0)
            self._step_message = str(getattr(event, "message", "") or "")
            if self.animate and self._due():
                self._draw(self.format_line(self.step))

    def _finish_normally(self, event: ProgressEndEvent) -> None:
        line = self.format_line(max(self.step, self.steps))
        if line != self._last_line:
            self._draw(line)
        self.display._write("\nDone.\n")

    def _summary_amount(self) -> str:
        if self.step >= self.steps:
            return super()._summary_amount()
        # Ended early but normally: say how far it got.
        if self.units == "bytes":
            return "{} of {}".format(format_size(self.step), format_size(self.steps))
        return "{} of {} {}".format(self.step, self.steps, self.units or "steps")


class SpinWriter(_Writer):
    """Draws a spinner for an operation whose number of steps is unknown.

    The line shows a character that turns (``\\ | / -``) at every step,
    the amount done and the rate when the steps count something
    (``units``), then the step's message cut to 70 characters.  When the
    operation ends normally, ``' Done.'`` ends the line.

    Parameters
    ----------
    display : ProgressDisplay
        The display that owns this writer, and whose stream it writes to.
    operation_id : object
        The operation followed.
    """

    #: The characters of the spinner, in turn.
    spin_chars = "\\|/-"
    #: The width of the message, in characters.
    message_width = 70

    def __init__(self, display: "ProgressDisplay", operation_id: Any) -> None:
        super().__init__(display, operation_id)
        self.count = 0
        self._latest_line: Optional[str] = None

    def format_line(self, message: str) -> str:
        """Return the line drawn for the current step.

        Parameters
        ----------
        message : str
            The step's message.

        Returns
        -------
        str
            The spinner character, the amount done and rate (when the
            operation has ``units``), and the message, padded or cut to
            width.
        """
        char = self.spin_chars[self.count % len(self.spin_chars)]
        text = str(message)[: self.message_width]
        if self.units:
            figures = self._amount(self.step)
            rate = self._rate(self.step)
            if rate is not None:
                figures += "  " + self._format_rate(rate)
            return "%s %s  %-*s" % (char, figures, self.message_width, text)
        return "%s %-*s" % (char, self.message_width, text)

    def step_listener(self, event: ProgressStepEvent) -> None:
        """Turn the spinner and show the step's message.

        Parameters
        ----------
        event : ProgressStepEvent
            A step of the operation.
        """
        with self.display._lock:
            if not self._active():
                return
            step = getattr(event, "step", None)
            if isinstance(step, (int, float)):
                self.step = step
            if not self.animate:
                return
            line = self.format_line(getattr(event, "message", ""))
            self.count += 1
            self._latest_line = line
            if self._due():
                self._draw(line)

    def _finish_normally(self, event: ProgressEndEvent) -> None:
        # Show the last step even if it came too soon to be drawn.
        if self._latest_line is not None and self._latest_line != self._last_line:
            self._draw(self._latest_line)
        self.display._write(" Done.\n")


class ProgressDisplay(object):
    """Show the progress of operations on a text stream.

    The display listens to
    :class:`~encore.events.progress_events.ProgressStartEvent` (and so to its
    subclasses, such as the stores' progress events).  For each start event
    it creates a writer that follows the rest of the operation; when
    animating, it first writes ``"<message>:"`` on a line of its own.

    The event manager holds the display's listeners weakly (they are bound
    methods): keep a reference to the display for as long as it should
    show progress.

    Parameters
    ----------
    event_manager : BaseEventManager, optional
        The manager to listen to; defaults to the package-wide manager
        (:func:`~encore.events.package_globals.get_event_manager`).
    stream : file-like, optional
        Where to write; defaults to :data:`sys.stdout` (looked up at each
        write, so redirections of ``sys.stdout`` are honoured).
    animate : bool, optional
        Whether to draw bars and spinners in place.  By default (``None``)
        the display animates when the stream is a terminal, and otherwise
        writes only one line per operation, when it ends.

    Attributes
    ----------
    writers : dict
        Maps the ``operation_id`` of every operation in progress to its
        writer.
    """

    #: The writer class for operations with a known number of steps.
    progress_writer = ProgressWriter
    #: The writer class for operations with an unknown number of steps.
    spin_writer = SpinWriter

    def __init__(
        self,
        event_manager: Optional[BaseEventManager] = None,
        stream: Optional[TextIO] = None,
        animate: Optional[bool] = None,
    ) -> None:
        if event_manager is None:
            from encore.events.package_globals import get_event_manager

            event_manager = get_event_manager()
        self.event_manager = event_manager
        self._stream = stream
        self.animate = animate
        self.writers: Dict[Any, _Writer] = {}
        self._lock = threading.RLock()
        self.event_manager.connect(ProgressStartEvent, self.start_listener)

    @property
    def stream(self) -> TextIO:
        """file-like : The stream written to."""
        return sys.stdout if self._stream is None else self._stream

    def _animating(self) -> bool:
        if self.animate is not None:
            return bool(self.animate)
        return _is_terminal(self.stream)

    def _line_width(self) -> Optional[int]:
        # Lines longer than the terminal would wrap and break the redraw.
        if not _is_terminal(self.stream):
            return None
        return max(20, shutil.get_terminal_size((80, 24)).columns - 1)

    def start_listener(self, event: ProgressStartEvent) -> None:
        """Announce an operation and create the writer that follows it.

        Parameters
        ----------
        event : ProgressStartEvent
            The start event; its ``steps`` chooses the writer:
            :attr:`progress_writer` if positive, :attr:`spin_writer`
            otherwise.  Its ``units`` (if any) says what the steps count;
            the steps of store progress events count bytes.
        """
        operation_id = event.operation_id  # type: ignore[attr-defined]  # (set by the emitter)
        steps = getattr(event, "steps", -1)
        message = str(getattr(event, "message", ""))
        units = getattr(event, "units", None)
        if units is None and _is_store_progress(event):
            units = "bytes"
        with self._lock:
            previous = self.writers.get(operation_id)
            if previous is not None:
                self._remove_writer(previous)
            animate = self._animating()
            if animate:
                self._write("{}:\n".format(message))
            if isinstance(steps, int) and steps > 0:
                writer: _Writer = self.progress_writer(self, operation_id, steps)
            else:
                writer = self.spin_writer(self, operation_id)
            writer.units = units
            writer.message = message
            writer.animate = animate
            self.writers[operation_id] = writer
            only_this_operation = {"operation_id": operation_id}
            self.event_manager.connect(ProgressStepEvent, writer.step_listener, filter=only_this_operation)
            self.event_manager.connect(ProgressEndEvent, writer.end_listener, filter=only_this_operation)

    def forget(self, operation_id: Any) -> None:
        """Stop following one operation, without writing anything more.

        For a program that reports a failure itself: the operation's bar is
        left as it is (its line is ended when it was being redrawn) and its
        end event will write nothing.

        Parameters
        ----------
        operation_id : object
            The operation; unknown operations are ignored.
        """
        with self._lock:
            writer = self.writers.get(operation_id)
            if writer is None:
                return
            if writer._line_open:
                self._write("\n")
                writer._line_open = False
            self._remove_writer(writer)

    def disconnect(self) -> None:
        """Stop listening: no further output for any operation."""
        with self._lock:
            for writer in list(self.writers.values()):
                self._remove_writer(writer)
            try:
                self.event_manager.disconnect(ProgressStartEvent, self.start_listener)
            except KeyError:
                pass

    def _remove_writer(self, writer: _Writer) -> None:
        with self._lock:
            if self.writers.get(writer.operation_id) is writer:
                del self.writers[writer.operation_id]
            for event_class, listener in (
                (ProgressStepEvent, writer.step_listener),
                (ProgressEndEvent, writer.end_listener),
            ):
                try:
                    self.event_manager.disconnect(event_class, listener)
                except KeyError:
                    pass

    def _write(self, text: str) -> None:
        with self._lock:
            stream = self.stream
            stream.write(text)
            stream.flush()


def _is_store_progress(event: Any) -> bool:
    # Imported late: the terminal package must not load the storage package
    # unless a store event is actually seen.
    module = type(event).__module__ or ""
    if "encore.storage" not in sys.modules and not module.startswith("encore.storage"):
        return False
    from encore.storage.events import StoreProgressEvent

    return isinstance(event, StoreProgressEvent)

"""Progress bars and spinners for text terminals, driven by progress events.

A :class:`ProgressDisplay` connects to an event manager and, for every
operation that emits a
:class:`~encore.events.progress_events.ProgressStartEvent`, prints the
operation's message and creates a *writer* for it:

* a :class:`ProgressWriter` (a bar of ``*`` characters) when the start event
  announces a number of steps (``steps > 0``);
* a :class:`SpinWriter` (a spinning character and the latest message) when
  the number of steps is unknown.

The writer follows the operation's
:class:`~encore.events.progress_events.ProgressStepEvent` and
:class:`~encore.events.progress_events.ProgressEndEvent` (matched by
``operation_id``), redraws its line in place with a carriage return, and
removes itself when the operation ends.

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

prints ``Copying:``, a bar that fills up, and ``Done.``.
"""
from __future__ import annotations

import logging
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

__all__ = ["ProgressDisplay", "ProgressWriter", "SpinWriter", "write_static"]


def write_static(s: str, stream: Optional[TextIO] = None) -> None:
    """Write text and move the cursor back over it.

    Writes a backspace, then ``s``, then one backspace per character of
    ``s``, and flushes, so that the next output overwrites ``s`` in place.

    Parameters
    ----------
    s : str
        The text to show.
    stream : file-like, optional
        Where to write; defaults to :data:`sys.stdout` (looked up at each
        call).
    """
    if stream is None:
        stream = sys.stdout
    stream.write("\b" + s + "\b" * len(s))
    stream.flush()


class _Writer(object):
    """What the two writers share: the display, the operation and redrawing."""

    #: Redraws closer together than this many seconds are skipped (the
    #: final drawing at the end of the operation is never skipped).
    min_interval = 0.05
    #: The clock used to space redraws out (a monotonic clock, in seconds).
    clock = staticmethod(time.monotonic)
    #: Each writer's listener for the step events of its operation.
    step_listener: Callable[[ProgressStepEvent], None]

    def __init__(self, display: "ProgressDisplay", operation_id: Any) -> None:
        self.display = display
        self.operation_id = operation_id
        self._last_draw: Optional[float] = None
        # Whether the cursor sits at the end of a line this writer drew.
        self._line_open = False
        # The line on screen, so that the end does not draw it again.
        self._last_line: Optional[str] = None

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
        self.display._write("\r" + line)
        self._line_open = True
        self._last_line = line

    def _finish(self, event: ProgressEndEvent) -> None:
        exit_state = getattr(event, "exit_state", "normal")
        if exit_state == "normal":
            self._finish_normally(event)
        else:
            message = getattr(event, "message", "")
            self.display._write(
                "{}{}: {}\n".format("\n" if self._line_open else "", str(exit_state).upper(), message)
            )
        self._line_open = False
        self.display._remove_writer(self)

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

    The line shows the step number in five columns and a 70-column bar
    filled with ``*`` in proportion to ``step / steps``:
    ``'%5d [%-70s]'``.  When the operation ends normally the full bar is
    drawn, followed by a line ``Done.``.

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
    bar_width = 70

    def __init__(self, display: "ProgressDisplay", operation_id: Any, steps: int) -> None:
        super().__init__(display, operation_id)
        self.steps = steps

    def format_line(self, step: int) -> str:
        """Return the line drawn for a step.

        Parameters
        ----------
        step : int
            The step reached.

        Returns
        -------
        str
            The step number and the bar; the bar is clamped to its width.
        """
        filled = int(round(step / float(self.steps) * self.bar_width)) if self.steps > 0 else 0
        filled = max(0, min(self.bar_width, filled))
        return "%5d [%-*s]" % (step, self.bar_width, "*" * filled)

    def step_listener(self, event: ProgressStepEvent) -> None:
        """Redraw the bar for a step event (unless redrawn very recently).

        Parameters
        ----------
        event : ProgressStepEvent
            A step of the operation; its ``step`` attribute sets the bar.
        """
        with self.display._lock:
            if self._active() and self._due():
                self._draw(self.format_line(int(getattr(event, "step", 0))))

    def _finish_normally(self, event: ProgressEndEvent) -> None:
        line = self.format_line(self.steps)
        if line != self._last_line:
            self._draw(line)
        self.display._write("\nDone.\n")


class SpinWriter(_Writer):
    """Draws a spinner for an operation whose number of steps is unknown.

    The line shows a character that turns (``\\ | / -``) at every step,
    then the step's message cut to 70 characters: ``'%s %-70s'``.  When the
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
            The spinner character and the message, padded or cut to width.
        """
        char = self.spin_chars[self.count % len(self.spin_chars)]
        text = str(message)[: self.message_width]
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
    it writes ``"<message>:"`` on a line of its own and creates a writer that
    follows the rest of the operation.

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
    ) -> None:
        if event_manager is None:
            from encore.events.package_globals import get_event_manager

            event_manager = get_event_manager()
        self.event_manager = event_manager
        self._stream = stream
        self.writers: Dict[Any, _Writer] = {}
        self._lock = threading.RLock()
        self.event_manager.connect(ProgressStartEvent, self.start_listener)

    @property
    def stream(self) -> TextIO:
        """file-like : The stream written to."""
        return sys.stdout if self._stream is None else self._stream

    def start_listener(self, event: ProgressStartEvent) -> None:
        """Announce an operation and create the writer that follows it.

        Parameters
        ----------
        event : ProgressStartEvent
            The start event; its ``steps`` chooses the writer:
            :attr:`progress_writer` if positive, :attr:`spin_writer`
            otherwise.
        """
        operation_id = event.operation_id  # type: ignore[attr-defined]  # (set by the emitter)
        steps = getattr(event, "steps", -1)
        with self._lock:
            previous = self.writers.get(operation_id)
            if previous is not None:
                self._remove_writer(previous)
            self._write("{}:\n".format(getattr(event, "message", "")))
            if steps is not None and steps > 0:
                writer: _Writer = self.progress_writer(self, operation_id, steps)
            else:
                writer = self.spin_writer(self, operation_id)
            self.writers[operation_id] = writer
            only_this_operation = {"operation_id": operation_id}
            self.event_manager.connect(ProgressStepEvent, writer.step_listener, filter=only_this_operation)
            self.event_manager.connect(ProgressEndEvent, writer.end_listener, filter=only_this_operation)

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

"""Events and a helper for reporting the progress of long operations.

A long operation emits one :class:`ProgressStartEvent`, any number of
:class:`ProgressStepEvent` and one :class:`ProgressEndEvent`, all carrying the
same ``operation_id``.  :class:`ProgressManager` emits them for you.
"""
from __future__ import annotations

import threading
import uuid
from typing import Any, Optional

from .abstract_event_manager import BaseEvent, BaseEventManager

#: The states an operation can end in.
EXIT_STATES = ("normal", "warning", "error", "exception")


class ProgressEvent(BaseEvent):
    """The base class of all progress events.

    Parameters
    ----------
    source : object, optional
        The object that emitted the event.
    **kwargs
        The attributes below (and any others), set on the event.

    Attributes
    ----------
    operation_id : object
        Identifies the operation; shared by all events of one operation.
    message : str
        A human-readable description.
    """


class ProgressStartEvent(ProgressEvent):
    """Emitted when an operation starts.

    Parameters
    ----------
    source : object, optional
        The object that emitted the event.
    **kwargs
        The attributes below (and any others), set on the event.

    Attributes
    ----------
    operation_id : object
        Identifies the operation.
    message : str
        A description of the operation.
    steps : int
        The number of steps expected, or ``-1`` when unknown.
    """


class ProgressStepEvent(ProgressEvent):
    """Emitted when an operation makes progress.

    Parameters
    ----------
    source : object, optional
        The object that emitted the event.
    **kwargs
        The attributes below (and any others), set on the event.

    Attributes
    ----------
    operation_id : object
        Identifies the operation.
    message : str
        A description of the current step.
    step : int
        The step just completed (counted from 0).
    """


class ProgressEndEvent(ProgressEvent):
    """Emitted when an operation ends.

    Parameters
    ----------
    source : object, optional
        The object that emitted the event.
    **kwargs
        The attributes below (and any others), set on the event.

    Attributes
    ----------
    operation_id : object
        Identifies the operation.
    message : str
        A final message.
    exit_state : str
        One of ``'normal'``, ``'warning'``, ``'error'`` or ``'exception'``.
    """


class ProgressManager(object):
    """Emit the progress events of one operation.

    It can be used as a context manager: entering starts the operation,
    leaving ends it, with ``exit_state='exception'`` and the exception text as
    message when the block raised.

    Parameters
    ----------
    event_manager : BaseEventManager, optional
        Where to emit; defaults to the package-wide manager.
    source : object, optional
        The ``source`` of the events; defaults to the progress manager.
    operation_id : object, optional
        Defaults to a new :func:`uuid.uuid4`.
    message : str, optional
        The message of the start event.
    steps : int, optional
        The number of steps, ``-1`` (the default) when unknown.
    **kwargs
        Extra attributes added to every event emitted.

    Examples
    --------
    >>> from encore.events.api import EventManager, ProgressManager
    >>> with ProgressManager(EventManager(), message="copying", steps=3) as progress:
    ...     for i in range(3):
    ...         progress("copied part %d" % i, step=i)
    """

    #: The event class emitted by :meth:`start`.
    StartEventType = ProgressStartEvent
    #: The event class emitted by :meth:`step`.
    StepEventType = ProgressStepEvent
    #: The event class emitted by :meth:`end`.
    EndEventType = ProgressEndEvent

    def __init__(
        self,
        event_manager: Optional[BaseEventManager] = None,
        source: Any = None,
        operation_id: Any = None,
        message: str = "Performing operation",
        steps: int = -1,
        **kwargs: Any,
    ) -> None:
        if event_manager is None:
            from .package_globals import get_event_manager

            event_manager = get_event_manager()
        self.event_manager = event_manager
        self.source = self if source is None else source
        self.operation_id = uuid.uuid4() if operation_id is None else operation_id
        self.message = message
        self.steps = steps
        self.extra_kwargs = kwargs
        self._step_count = 0
        self._running = False
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        """bool : Whether the operation has started and not yet ended."""
        return self._running

    def _emit(self, event_type: type, attributes: dict) -> None:
        values = dict(self.extra_kwargs)
        values.update(attributes)
        self.event_manager.emit(
            event_type(source=self.source, operation_id=self.operation_id, **values)
        )

    def start(self, **kwargs: Any) -> None:
        """Start the operation and emit its start event.

        Parameters
        ----------
        **kwargs
            Extra attributes for the start event.

        Events
        ------
        StartEventType
            With ``message`` and ``steps``.
        """
        self._running = True
        attributes = {"message": self.message, "steps": self.steps}
        attributes.update(kwargs)
        self._emit(self.StartEventType, attributes)

    def step(self, message: Optional[str] = None, step: Optional[int] = None, **kwargs: Any) -> None:
        """Report a step of the operation.

        Parameters
        ----------
        message : str, optional
            Describes the step; defaults to the operation's message.
        step : int, optional
            The step number; defaults to an internal counter that starts at 0
            and grows by one on every call.
        **kwargs
            Extra attributes for the step event.

        Raises
        ------
        Exception
            If the operation is not running.

        Events
        ------
        StepEventType
            With ``message`` and ``step``.
        """
        if not self._running:
            raise Exception("Progress operation {} is not running".format(self.operation_id))
        with self._lock:
            count = self._step_count
            self._step_count += 1
        attributes = {
            "message": self.message if message is None else message,
            "step": count if step is None else step,
        }
        attributes.update(kwargs)
        self._emit(self.StepEventType, attributes)

    def end(self, message: Optional[str] = None, exit_state: str = "normal", **kwargs: Any) -> None:
        """End the operation and emit its end event.

        Parameters
        ----------
        message : str, optional
            A final message; defaults to the operation's message.
        exit_state : str, optional
            ``'normal'`` (the default), ``'warning'``, ``'error'`` or
            ``'exception'``.
        **kwargs
            Extra attributes for the end event.  ``end_state``, the name
            Encore's manual uses in its example, is also accepted for
            ``exit_state`` (and kept as an attribute too).

        Raises
        ------
        Exception
            If the operation is not running.

        Events
        ------
        EndEventType
            With ``message`` and ``exit_state``.
        """
        if not self._running:
            raise Exception("Progress operation {} is not running".format(self.operation_id))
        if "end_state" in kwargs and exit_state == "normal":
            exit_state = kwargs["end_state"]
        attributes = {
            "message": self.message if message is None else message,
            "exit_state": exit_state,
        }
        attributes.update(kwargs)
        try:
            self._emit(self.EndEventType, attributes)
        finally:
            self._running = False

    def stop(self, message: Optional[str] = None, exit_state: str = "normal", **kwargs: Any) -> None:
        """End the operation: the same as :meth:`end`.

        Encore's manual names the methods of this class ``start()``,
        ``step()`` and ``stop()`` in its prose, while the method it documents
        is :meth:`end`; both names work.

        Parameters
        ----------
        message : str, optional
            A final message; defaults to the operation's message.
        exit_state : str, optional
            ``'normal'`` (the default), ``'warning'``, ``'error'`` or
            ``'exception'``.
        **kwargs
            Extra attributes for the end event.

        Raises
        ------
        Exception
            If the operation is not running.

        Events
        ------
        EndEventType
            With ``message`` and ``exit_state``.
        """
        self.end(message, exit_state, **kwargs)

    def __call__(self, message: Optional[str] = None, step: Optional[int] = None, **kwargs: Any) -> None:
        """Start the operation if needed, then report a step.

        Parameters
        ----------
        message : str, optional
            Describes the step.
        step : int, optional
            The step number (see :meth:`step`).
        **kwargs
            Extra attributes for the step event.
        """
        if not self._running:
            self.start()
        self.step(message=message, step=step, **kwargs)

    def __enter__(self) -> "ProgressManager":
        if not self._running:
            self.start()
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        if self._running:
            if exc_type is not None:
                self.end(message=str(exc_value), exit_state="exception")
            else:
                self.end()

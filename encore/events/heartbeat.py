"""A heartbeat: a thread that emits an event at a regular interval.

Listeners of :class:`HeartbeatEvent` can drive animations, polling or
periodic housekeeping without running threads of their own.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Optional

from .abstract_event_manager import BaseEvent, BaseEventManager

logger = logging.getLogger(__name__)

__all__ = ["Heartbeat", "HeartbeatEvent"]


class HeartbeatEvent(BaseEvent):
    """Emitted by a :class:`Heartbeat` on every beat.

    Parameters
    ----------
    source : Heartbeat, optional
        The heartbeat that emits the event.
    **kwargs
        The attributes below, set on the event.

    Attributes
    ----------
    source : Heartbeat
        The heartbeat that emitted the event.
    time : float
        The :func:`time.monotonic` time of the beat.
    frame : int
        The number of the beat, counted from 0.
    interval : float
        The heartbeat's interval in seconds.
    """


class Heartbeat(object):
    """Emit a :class:`HeartbeatEvent` every ``interval`` seconds.

    The heartbeat is controlled by assigning its :attr:`state`:
    ``'running'`` emits, ``'paused'`` waits without emitting, and any other
    value (conventionally ``'stopped'``) ends the loop, which then sets the
    state to ``'stopped'``.  A change of state wakes the loop at once, so a
    long interval does not delay stopping.

    Parameters
    ----------
    interval : float, optional
        Seconds between beats, 1/50 by default.
    event_manager : BaseEventManager, optional
        Where to emit; defaults to the package-wide manager.

    Attributes
    ----------
    interval : float
        Seconds between beats.
    frame_count : int
        The number of beats emitted so far.
    event_manager : BaseEventManager
        Where the beats are emitted.

    Events
    ------
    HeartbeatEvent
        Once per interval while running.

    Examples
    --------
    >>> from encore.events.api import EventManager, Heartbeat
    >>> heartbeat = Heartbeat(interval=0.01, event_manager=EventManager())
    >>> thread = heartbeat.serve()
    >>> heartbeat.state = 'stopped'
    >>> thread.join(5)
    """

    def __init__(self, interval: float = 1 / 50.0, event_manager: Optional[BaseEventManager] = None) -> None:
        if event_manager is None:
            from .package_globals import get_event_manager

            event_manager = get_event_manager()
        self.event_manager = event_manager
        self.interval = interval
        self.frame_count = 0
        self._condition = threading.Condition()
        self._state = "waiting"

    @property
    def state(self) -> str:
        """str : ``'waiting'``, ``'running'``, ``'paused'`` or ``'stopped'``.

        Assign ``'running'``, ``'paused'`` or ``'stopped'`` to control a
        heartbeat that is serving.
        """
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        with self._condition:
            if value != self._state:
                self._state = value
                self._condition.notify_all()

    def run(self) -> None:
        """Set the state to ``'running'`` and beat on this thread.

        Returns once the state is set to something other than ``'running'``
        or ``'paused'``; the state is then ``'stopped'``.

        Events
        ------
        HeartbeatEvent
            Once per interval while running.
        """
        self.state = "running"
        self._beat()

    def serve(self) -> threading.Thread:
        """Set the state to ``'running'`` and beat on a new daemon thread.

        Returns
        -------
        threading.Thread
            The started thread; it ends once the state is set to
            ``'stopped'``.

        Events
        ------
        HeartbeatEvent
            Once per interval while running.
        """
        # The state changes here, not on the new thread, so that a 'stopped'
        # assigned right after serve() returns cannot be overwritten.
        self.state = "running"
        thread = threading.Thread(target=self._beat, name="Heartbeat", daemon=True)
        thread.start()
        return thread

    def _beat(self) -> None:
        condition = self._condition
        try:
            while True:
                state = self._state
                if state == "running":
                    started = time.monotonic()
                    self.event_manager.emit(
                        HeartbeatEvent(
                            source=self, time=started, frame=self.frame_count, interval=self.interval
                        )
                    )
                    self.frame_count += 1
                    delay = max(started + self.interval - time.monotonic(), 0.001)
                elif state == "paused":
                    # No polling: assigning the state wakes the loop.
                    delay = None
                else:
                    break
                with condition:
                    if self._state == state:
                        condition.wait(delay)
        finally:
            with condition:
                self._state = "stopped"
                condition.notify_all()

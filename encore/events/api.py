"""The public API of the event system, in one module.

Import from here: ``from encore.events.api import EventManager, BaseEvent``.
"""
from .abstract_event_manager import BaseEvent, BaseEventManager
from .event_manager import EventManager
from .heartbeat import Heartbeat, HeartbeatEvent
from .package_globals import get_event_manager, set_event_manager
from .progress_events import (
    ProgressEndEvent,
    ProgressEvent,
    ProgressManager,
    ProgressStartEvent,
    ProgressStepEvent,
)

__all__ = [
    "BaseEvent",
    "BaseEventManager",
    "EventManager",
    "ProgressEvent",
    "ProgressStartEvent",
    "ProgressStepEvent",
    "ProgressEndEvent",
    "ProgressManager",
    "Heartbeat",
    "HeartbeatEvent",
    "get_event_manager",
    "set_event_manager",
]

"""The events emitted by stores.

Every modification of a store emits a :class:`StoreModificationEvent`
subclass; transactions emit :class:`StoreTransactionStartEvent` and
:class:`StoreTransactionEndEvent`; long operations emit the store progress
events, which are both progress events and key events.
"""
from __future__ import annotations

from encore.events.abstract_event_manager import BaseEvent
from encore.events.progress_events import (
    ProgressEndEvent,
    ProgressEvent,
    ProgressStartEvent,
    ProgressStepEvent,
)


class StoreEvent(BaseEvent):
    """The base class of every event emitted by a store.

    Attributes
    ----------
    source : AbstractReadOnlyStore
        The store that emitted the event.
    """


class StoreTransactionEvent(StoreEvent):
    """The base class of transaction events."""


class StoreTransactionStartEvent(StoreTransactionEvent):
    """Emitted when the outermost transaction of a store begins."""


class StoreTransactionEndEvent(StoreTransactionEvent):
    """Emitted when the outermost transaction of a store ends.

    Attributes
    ----------
    state : str
        ``'done'`` when it committed, ``'failed'`` when it rolled back.
    """


class StoreKeyEvent(StoreEvent):
    """The base class of events about one key.

    Attributes
    ----------
    key : str
        The key concerned.
    metadata : dict
        The key's metadata (for a deletion: the metadata it had).
    """


class StoreModificationEvent(StoreKeyEvent):
    """The base class of events emitted when a key is modified."""

    #: The kind of modification: ``'set'``, ``'update'`` or ``'delete'``.
    action: str = ""


class StoreSetEvent(StoreModificationEvent):
    """Emitted when a new key is created."""

    action = "set"


class StoreUpdateEvent(StoreModificationEvent):
    """Emitted when an existing key's data or metadata changes."""

    action = "update"


class StoreDeleteEvent(StoreModificationEvent):
    """Emitted when a key is deleted."""

    action = "delete"


class StoreProgressEvent(ProgressEvent, StoreKeyEvent):
    """The base class of progress events about a key of a store."""


class StoreProgressStartEvent(ProgressStartEvent, StoreProgressEvent):
    """Emitted when a long store operation on a key starts."""


class StoreProgressStepEvent(ProgressStepEvent, StoreProgressEvent):
    """Emitted as a long store operation on a key progresses."""


class StoreProgressEndEvent(ProgressEndEvent, StoreProgressEvent):
    """Emitted when a long store operation on a key ends."""

"""Fixtures shared by the storage tests."""
import pytest

from encore.events.event_manager import EventManager
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.events import StoreEvent
from encore.storage.tests.abstract_test import EventRecorder


@pytest.fixture
def event_manager():
    """A fresh, private event manager."""
    return EventManager()


@pytest.fixture
def dict_store(event_manager):
    """A connected, empty DictMemoryStore emitting on ``event_manager``."""
    store = DictMemoryStore(event_manager=event_manager)
    store.connect()
    yield store
    store.disconnect()


@pytest.fixture
def record_events(event_manager):
    """Return a factory of EventRecorder context managers for a store.

    ``with record_events(store) as recorder:`` records the events the store
    emits on ``event_manager`` (of ``StoreEvent`` by default).
    """

    def factory(store, event_class=StoreEvent):
        return EventRecorder(event_manager, store, event_class)

    return factory

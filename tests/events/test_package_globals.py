"""The package-wide event manager: get_event_manager / set_event_manager."""
import pytest

from encore.events import package_globals
from encore.events.api import BaseEvent, EventManager, get_event_manager, set_event_manager


class SomeEvent(BaseEvent):
    pass


pytestmark = pytest.mark.usefixtures("global_manager_reset")


def test_get_creates_one_manager_lazily():
    assert package_globals._event_manager is None
    first = get_event_manager()
    assert isinstance(first, EventManager)
    assert get_event_manager() is first
    assert package_globals._event_manager is first


def test_set_before_any_get():
    mine = EventManager()
    set_event_manager(mine)
    assert get_event_manager() is mine


def test_set_replaces_an_untouched_default():
    default = get_event_manager()
    assert default._is_pristine_default()
    mine = EventManager()
    set_event_manager(mine)
    assert get_event_manager() is mine


def test_set_refused_once_the_default_has_a_listener():
    default = get_event_manager()
    default.connect(SomeEvent, lambda event: None)
    assert not default._is_pristine_default()
    with pytest.raises(ValueError):
        set_event_manager(EventManager())
    assert get_event_manager() is default


def test_default_stays_used_after_its_listener_is_disconnected():
    default = get_event_manager()
    listener = lambda event: None  # noqa: E731
    default.connect(SomeEvent, listener)
    default.disconnect(SomeEvent, listener)
    with pytest.raises(ValueError):
        set_event_manager(EventManager())


@pytest.mark.parametrize(
    "configure",
    [
        lambda manager: manager.disable(SomeEvent),
        lambda manager: manager.set_trace(lambda *args: None),
    ],
    ids=["disable", "set_trace"],
)
def test_set_refused_once_the_default_is_configured(configure):
    default = get_event_manager()
    configure(default)
    with pytest.raises(ValueError):
        set_event_manager(EventManager())


def test_emitting_on_the_default_keeps_it_replaceable():
    default = get_event_manager()
    default.emit(SomeEvent())
    assert default.has_listeners(SomeEvent) is False
    mine = EventManager()
    set_event_manager(mine)
    assert get_event_manager() is mine


def test_set_refused_over_an_explicitly_set_manager():
    mine = EventManager()
    set_event_manager(mine)
    with pytest.raises(ValueError):
        set_event_manager(EventManager())
    # Setting the same manager again is harmless.
    set_event_manager(mine)
    assert get_event_manager() is mine


def test_a_replaced_default_is_not_pristine_anymore_in_its_successor():
    get_event_manager()
    mine = EventManager()
    set_event_manager(mine)
    assert not mine._is_pristine_default()


def test_set_requires_an_event_manager():
    for not_a_manager in (object(), None, "manager"):
        with pytest.raises(TypeError):
            set_event_manager(not_a_manager)
    assert package_globals._event_manager is None


class DuckTypedManager(object):
    """A manager that does not subclass BaseEventManager, as Encore allowed."""

    def __init__(self):
        self.emitted = []

    def connect(self, cls, func, filter=None, priority=0):
        pass

    def disconnect(self, cls, func):
        pass

    def emit(self, event, block=True):
        self.emitted.append(event)


def test_set_accepts_a_duck_typed_manager():
    manager = DuckTypedManager()
    set_event_manager(manager)
    assert get_event_manager() is manager
    # The rest of the package uses it like any other manager.
    from encore.events.progress_events import ProgressManager, ProgressStartEvent

    ProgressManager(message="quack").start()
    assert [type(event) for event in manager.emitted] == [ProgressStartEvent]


def test_private_managers_are_never_pristine_defaults():
    assert not EventManager()._is_pristine_default()


def test_a_duck_typed_manager_is_never_replaced_silently():
    from unittest import mock

    installed = mock.Mock()  # answers every attribute, even _is_pristine_default
    set_event_manager(installed)
    with pytest.raises(ValueError):
        set_event_manager(EventManager())
    assert get_event_manager() is installed


def test_a_replaced_default_forwards_to_its_successor():
    # Code that got hold of the default before it was replaced (here a
    # progress manager, and a plain reference) must reach the new manager.
    from encore.events.progress_events import ProgressManager, ProgressStartEvent

    early = get_event_manager()
    progress = ProgressManager(message="early")
    assert progress.event_manager is early
    early.emit(SomeEvent())  # emitting keeps it replaceable
    mine = EventManager()
    set_event_manager(mine)
    seen = []
    mine.connect(BaseEvent, seen.append)
    progress.start()
    early.emit(SomeEvent(tag="late"))
    assert [type(event) for event in seen] == [ProgressStartEvent, SomeEvent]
    # Everything else is forwarded too.
    other = []
    early.connect(SomeEvent, other.append, filter={"tag": "x"}, priority=5)
    assert list(mine.get_listeners(SomeEvent)) == [other.append, seen.append]
    early.disable(SomeEvent)
    assert not mine.is_enabled(SomeEvent) and not early.is_enabled(SomeEvent)
    early.enable(SomeEvent)
    assert early.has_listeners(SomeEvent) and mine.has_listeners(SomeEvent)
    early.disconnect(SomeEvent, other.append)
    assert list(early.get_listeners(SomeEvent)) == [seen.append]
    assert early.get_event(SomeEvent) is mine.get_event(SomeEvent)
    thread = early.emit(SomeEvent(tag="async"), block=False)
    thread.join(10)
    assert seen[-1].tag == "async"
    early.set_trace(lambda *args: True)
    assert mine._trace_func is not None
    assert not early._is_pristine_default()


def test_a_replaced_default_forwards_to_a_duck_typed_successor():
    early = get_event_manager()
    successor = DuckTypedManager()
    set_event_manager(successor)
    event = SomeEvent()
    early.emit(event)
    assert successor.emitted == [event]
    assert early.has_listeners(SomeEvent)  # unknown: assume someone listens


def test_connect_racing_with_the_replacement_reaches_the_successor():
    # A connect already inside the old default, waiting for its lock, when
    # the default is retired is redone on the successor rather than lost.
    import sys
    import threading
    import time

    early = get_event_manager()
    mine = EventManager()
    calls = []
    connector = threading.Thread(target=early.connect, args=(SomeEvent, calls.append))
    with early._lock:
        connector.start()
        # Wait (bounded) until the connect is blocked inside EventManager.connect.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            frame = sys._current_frames().get(connector.ident)
            if frame is not None and frame.f_code.co_name == "connect":
                break
            time.sleep(0.001)
        assert frame is not None and frame.f_code.co_name == "connect"
        # The lock is re-entrant: retire the default while the connect waits.
        set_event_manager(mine)
    connector.join(10)
    assert not connector.is_alive()
    assert get_event_manager() is mine
    mine.emit(SomeEvent())
    assert len(calls) == 1
    assert early.event_map == {}

"""Encore 0.8's helper classes of ``encore.events.event_manager``:
``EventManager.bmro_clip``, ``EventInfo``, ``CallableNotifier``,
``MethodNotifier`` and ``LoggingTracer``, used the way Encore programs did."""
import logging

import pytest

from encore.events.abstract_event_manager import BaseEvent
from encore.events.event_manager import (
    CallableNotifier,
    EventInfo,
    EventManager,
    LoggingTracer,
    MethodNotifier,
)

from .helpers import Level1Event, Level2Event, Level3Event, Owner


def test_bmro_clip_cuts_the_mro_at_base_event():
    assert EventManager.bmro_clip == -len(BaseEvent.__mro__) + 1
    assert EventManager().bmro_clip == EventManager.bmro_clip
    clip = EventManager.bmro_clip
    assert Level3Event.__mro__[:clip] == (Level3Event, Level2Event, Level1Event, BaseEvent)
    assert BaseEvent.__mro__[:clip] == (BaseEvent,)


# -- a stand-alone EventInfo ----------------------------------------------------


def test_standalone_event_info_orders_and_filters(recorder):
    info = EventInfo(Level1Event)
    low, high, red = recorder.listener("low"), recorder.listener("high"), recorder.listener("red")
    info.connect(low)
    info.connect(high, priority=5)
    info.connect(red, filter={"colour": "red"})
    assert info.get_listeners() == [high, low, red]
    assert info.get_listeners(Level1Event) == [high, low, red]
    assert info.get_listeners(Level1Event(colour="blue")) == [high, low]
    assert info.get_listeners(Level1Event(colour="red")) == [high, low, red]
    # No attribute at all: a filtered listener is skipped.
    assert info.get_listeners(Level1Event()) == [high, low]


def test_standalone_event_info_reconnect_and_disconnect(recorder):
    info = EventInfo(Level1Event)
    first, second = recorder.listener("1"), recorder.listener("2")
    info.connect(first)
    info.connect(second)
    info.connect(first)  # a reconnection moves to the end of its tier
    assert info.get_listeners() == [second, first]
    info.disconnect(first)
    assert info.get_listeners() == [second]
    with pytest.raises(KeyError):
        info.disconnect(first)
    with pytest.raises(TypeError):
        info.connect("not callable")


def test_standalone_event_info_enable_disable():
    info = EventInfo(Level2Event)
    assert info.is_enabled() is True
    info.disable()
    assert info.is_enabled() is False and info.disabled is True
    info.enable()
    assert info.is_enabled() is True


def test_standalone_event_info_holds_methods_weakly(collect):
    info = EventInfo(Level1Event)
    calls = []
    owner = Owner(calls)
    info.connect(owner.on_event)
    assert info.get_listeners() == [owner.on_event]
    info.disconnect(owner.on_event)  # a fresh bound method designates it
    info.connect(owner.on_event)
    del owner
    collect()
    assert info.get_listeners() == []


def test_get_id():
    info = EventInfo(Level1Event)
    owner, other = Owner([]), Owner([])
    assert info.get_id(owner.on_event) == info.get_id(owner.on_event)
    assert info.get_id(owner.on_event) != info.get_id(other.on_event)
    items = []
    assert info.get_id(items.append) == info.get_id(items.append)

    def function(event):
        pass

    assert info.get_id(function) == id(function)


# -- the EventInfo of a manager -------------------------------------------------


def test_managed_event_info_changes_reach_dispatch(manager, recorder):
    manager.register(Level1Event)
    info = manager.get_event(Level1Event)
    manager.emit(Level2Event())  # builds and caches the dispatch plan
    listener = recorder.listener("via info")
    info.connect(listener, priority=1)
    event = Level2Event()
    manager.emit(event)
    assert recorder.calls == [("via info", event)]
    assert list(manager.get_listeners(Level2Event)) == [listener]

    info.disable()
    assert manager.is_enabled(Level2Event) is False
    manager.emit(Level2Event())
    assert len(recorder.calls) == 1
    info.enable()
    assert manager.is_enabled(Level2Event) is True

    info.disconnect(listener)
    manager.emit(Level2Event())
    assert len(recorder.calls) == 1
    with pytest.raises(KeyError):
        info.disconnect(listener)


def test_managed_event_info_orders_with_the_manager(manager, recorder):
    first, second = recorder.listener("manager"), recorder.listener("info")
    manager.connect(Level1Event, first)
    manager.get_event(Level1Event).connect(second)
    manager.emit(Level1Event())
    assert recorder.tags() == ["manager", "info"]
    assert manager.get_event(Level1Event).get_listeners(Level1Event()) == [first, second]


def test_managed_event_info_forgets_dead_instances(manager, collect):
    calls = []
    owner = Owner(calls)
    manager.register(Level1Event)
    manager.get_event(Level1Event).connect(owner.on_event)
    manager.emit(Level1Event())
    assert len(calls) == 1
    del owner
    collect()
    assert list(manager.get_listeners(Level1Event)) == []
    assert manager.has_listeners(Level1Event) is False


# -- notifiers ---------------------------------------------------------------------


def test_callable_notifier_calls_its_function():
    seen = []
    notifier = CallableNotifier(seen.append)
    event = Level1Event()
    notifier(event)
    assert seen == [event]
    assert notifier.func == seen.append
    assert (notifier.callback, notifier.args) == (None, ())
    told = []
    notifier = CallableNotifier(seen.append, told.append, ("id",))
    assert (notifier.callback, notifier.args) == (told.append, ("id",))


def test_method_notifier_calls_and_notifies_when_the_instance_dies(collect):
    calls, told = [], []
    owner = Owner(calls)
    notifier = MethodNotifier(owner.on_event, lambda *args: told.append(args), (1, 2))
    event = Level1Event()
    notifier(event)
    assert calls == [("owner", event)]
    assert notifier.instance_ref() is owner
    assert told == []
    del owner
    collect()
    assert told == [(1, 2)]
    assert notifier.dead is True
    assert notifier(Level1Event()) is None
    assert len(calls) == 1


def test_method_notifier_notify_is_public():
    told = []
    owner = Owner([])
    notifier = MethodNotifier(owner.on_event, told.append, ("gone",))
    notifier.notify()
    assert told == ["gone"]


def test_method_notifier_refuses_what_it_cannot_hold():
    with pytest.raises(TypeError):
        MethodNotifier(len)

    class Slotted(object):
        __slots__ = ()

        def on_event(self, event):
            pass

    with pytest.raises(TypeError):
        MethodNotifier(Slotted().on_event)


# -- LoggingTracer -------------------------------------------------------------------


class Collector(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_logging_tracer_defaults_and_encore_call_form():
    module_logger = logging.getLogger("encore.events.event_manager")
    tracer = LoggingTracer()
    assert tracer.logger is module_logger
    assert tracer.level == logging.INFO
    collector = Collector()
    saved = module_logger.level, module_logger.propagate
    module_logger.addHandler(collector)
    module_logger.setLevel(logging.DEBUG)
    module_logger.propagate = False
    try:
        assert tracer("emit", print, "a", 2, key="value") is None
        assert tracer("listen", print, (Level1Event,)) is None
    finally:
        module_logger.removeHandler(collector)
        module_logger.setLevel(saved[0])
        module_logger.propagate = saved[1]
    first, second = collector.records
    assert first.levelno == second.levelno == logging.INFO
    assert first.getMessage().startswith("emit: ")
    assert "'a', 2" in first.getMessage() and "'key': 'value'" in first.getMessage()
    assert second.getMessage().startswith("listen: ")

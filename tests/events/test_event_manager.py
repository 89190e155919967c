"""Core behaviour of EventManager: connect, disconnect, ordering, emit."""
import logging
import weakref

import pytest

from encore.events.abstract_event_manager import BaseEvent, BaseEventManager
from encore.events.event_manager import (
    CallableNotifier,
    EventInfo,
    EventManager,
    MethodNotifier,
)

from .helpers import Level1Event, Level2Event, Level3Event, Owner


class Mixin(object):
    pass


class MixedEvent(Level1Event, Mixin):
    pass


class UnrelatedEvent(BaseEvent):
    pass


def test_is_a_base_event_manager(manager):
    assert isinstance(manager, BaseEventManager)


def test_listener_receives_event_of_its_class(manager, recorder):
    manager.connect(Level1Event, recorder.listener("a"))
    event = Level1Event(source="me", answer=42)
    assert manager.emit(event) is None
    assert recorder.calls == [("a", event)]
    assert event.answer == 42


def test_listener_receives_subclass_events_but_not_superclass_events(manager, recorder):
    manager.connect(Level2Event, recorder.listener("mid"))
    manager.emit(Level1Event())
    manager.emit(Level2Event())
    manager.emit(Level3Event())
    manager.emit(UnrelatedEvent())
    assert [type(event) for _, event in recorder.calls] == [Level2Event, Level3Event]


def test_global_order_across_three_level_hierarchy(manager, recorder):
    # (class, tag, priority) in connection order.
    connections = [
        (Level1Event, "L1-p0-first", 0),
        (Level3Event, "L3-p0", 0),
        (Level2Event, "L2-p10", 10),
        (Level1Event, "L1-p5", 5),
        (Level3Event, "L3-p10", 10),
        (Level2Event, "L2-p0", 0),
        (Level1Event, "L1-p10", 10),
        (Level3Event, "L3-m1", -1),
        (Level1Event, "L1-p0-last", 0),
    ]
    for cls, tag, priority in connections:
        manager.connect(cls, recorder.listener(tag), priority=priority)
    manager.emit(Level3Event())
    assert recorder.tags() == [
        "L2-p10", "L3-p10", "L1-p10",
        "L1-p5",
        "L1-p0-first", "L3-p0", "L2-p0", "L1-p0-last",
        "L3-m1",
    ]
    recorder.calls.clear()
    manager.emit(Level2Event())
    assert recorder.tags() == ["L2-p10", "L1-p10", "L1-p5", "L1-p0-first", "L2-p0", "L1-p0-last"]
    recorder.calls.clear()
    manager.emit(Level1Event())
    assert recorder.tags() == ["L1-p10", "L1-p5", "L1-p0-first", "L1-p0-last"]


def test_order_reflects_connections_made_after_first_emit(manager, recorder):
    manager.connect(Level1Event, recorder.listener("a"))
    manager.emit(Level3Event())
    manager.connect(Level3Event, recorder.listener("b"), priority=1)
    recorder.calls.clear()
    manager.emit(Level3Event())
    assert recorder.tags() == ["b", "a"]


def test_reconnect_moves_listener_to_end_of_its_tier(manager, recorder):
    first = recorder.listener("first")
    manager.connect(Level1Event, first)
    manager.connect(Level1Event, recorder.listener("second"))
    manager.connect(Level1Event, first)
    manager.emit(Level1Event())
    assert recorder.tags() == ["second", "first"]


def test_reconnect_changes_priority(manager, recorder):
    first = recorder.listener("first")
    manager.connect(Level1Event, first, priority=5)
    manager.connect(Level1Event, recorder.listener("second"), priority=1)
    manager.connect(Level1Event, first, priority=0)
    manager.emit(Level1Event())
    assert recorder.tags() == ["second", "first"]


def test_reconnect_replaces_filter_and_dropping_it(manager, recorder):
    listener = recorder.listener("x")
    manager.connect(Level1Event, listener, filter={"colour": "red"})
    manager.connect(Level1Event, listener, filter={"colour": "blue"})
    manager.emit(Level1Event(colour="red"))
    manager.emit(Level1Event(colour="blue"))
    assert [event.colour for _, event in recorder.calls] == ["blue"]
    # Reconnecting without a filter drops the old one.
    manager.connect(Level1Event, listener)
    manager.emit(Level1Event(colour="green"))
    assert [event.colour for _, event in recorder.calls] == ["blue", "green"]
    assert len(manager.get_event(Level1Event).listeners) == 1


def test_same_listener_on_two_classes_is_called_for_each(manager, recorder):
    listener = recorder.listener("x")
    manager.connect(Level1Event, listener)
    manager.connect(Level2Event, listener)
    manager.emit(Level2Event())
    assert recorder.tags() == ["x", "x"]
    manager.disconnect(Level2Event, listener)
    recorder.calls.clear()
    manager.emit(Level2Event())
    assert recorder.tags() == ["x"]


def test_disconnect(manager, recorder):
    listener = recorder.listener("x")
    manager.connect(Level1Event, listener)
    manager.disconnect(Level1Event, listener)
    manager.emit(Level1Event())
    assert recorder.calls == []


def test_disconnect_unknown_class_raises_key_error(manager, recorder):
    with pytest.raises(KeyError):
        manager.disconnect(Level1Event, recorder.listener("x"))


def test_disconnect_unconnected_listener_raises_key_error(manager, recorder):
    manager.connect(Level1Event, recorder.listener("a"))
    with pytest.raises(KeyError):
        manager.disconnect(Level1Event, recorder.listener("b"))
    listener = recorder.listener("c")
    manager.connect(Level1Event, listener)
    manager.disconnect(Level1Event, listener)
    with pytest.raises(KeyError):
        manager.disconnect(Level1Event, listener)


def test_disconnect_from_other_class_raises_key_error(manager, recorder):
    listener = recorder.listener("x")
    manager.connect(Level1Event, listener)
    manager.register(Level2Event)
    with pytest.raises(KeyError):
        manager.disconnect(Level2Event, listener)
    manager.emit(Level2Event())
    assert recorder.tags() == ["x"]


def test_builtin_bound_method_listener_can_be_disconnected_with_a_fresh_object(manager):
    received = []
    manager.connect(Level1Event, received.append)
    manager.connect(Level1Event, received.append)  # a fresh but equal object: a reconnect
    manager.emit(Level1Event())
    assert len(received) == 1
    manager.disconnect(Level1Event, received.append)
    manager.emit(Level1Event())
    assert len(received) == 1


def test_callable_object_listener(manager):
    class Counter(object):
        def __init__(self):
            self.count = 0

        def __call__(self, event):
            self.count += 1

    counter = Counter()
    manager.connect(Level1Event, counter)
    manager.emit(Level2Event())
    assert counter.count == 1
    manager.disconnect(Level1Event, counter)
    manager.emit(Level2Event())
    assert counter.count == 1


def test_equal_but_distinct_callable_objects_are_two_listeners(manager):
    class AlwaysEqual(object):
        def __init__(self, calls):
            self.calls = calls

        def __call__(self, event):
            self.calls.append(self)

        def __eq__(self, other):
            return True

        __hash__ = object.__hash__

    calls = []
    first, second = AlwaysEqual(calls), AlwaysEqual(calls)
    manager.connect(Level1Event, first)
    manager.connect(Level1Event, second)
    manager.emit(Level1Event())
    assert calls == [first, second]
    manager.disconnect(Level1Event, second)
    calls.clear()
    manager.emit(Level1Event())
    assert calls == [first]


def test_connect_rejects_bad_arguments(manager):
    with pytest.raises(TypeError):
        manager.connect(Level1Event, "not callable")
    with pytest.raises(TypeError):
        manager.connect("not a class", lambda event: None)
    assert manager.get_event() == {}


def test_functions_and_lambdas_are_held_strongly(manager, collect):
    calls = []

    def make():
        return lambda event: calls.append(event)

    manager.connect(Level1Event, make())
    collect()
    manager.emit(Level1Event())
    assert len(calls) == 1


def test_mixin_in_hierarchy(manager, recorder):
    manager.connect(Mixin, recorder.listener("mixin"))
    manager.emit(MixedEvent())
    manager.emit(Level1Event())
    assert recorder.tags() == ["mixin"]
    assert manager.get_event_hierarchy(MixedEvent) == (MixedEvent, Level1Event, BaseEvent, Mixin)


def test_get_event_hierarchy(manager):
    assert manager.get_event_hierarchy(Level3Event) == (Level3Event, Level2Event, Level1Event, BaseEvent)
    assert manager.get_event_hierarchy(BaseEvent) == (BaseEvent,)


def test_register_and_get_event(manager):
    manager.register(Level1Event)
    with pytest.raises(ValueError):
        manager.register(Level1Event)
    info = manager.get_event(Level1Event)
    assert isinstance(info, EventInfo)
    assert info.cls is Level1Event
    assert info.listeners == ()
    assert manager.get_event() is manager.event_map
    assert list(manager.event_map) == [Level1Event]
    with pytest.raises(KeyError):
        manager.get_event(Level2Event)


def test_connect_registers_implicitly(manager):
    manager.connect(Level2Event, lambda event: None)
    assert Level2Event in manager.get_event()
    with pytest.raises(ValueError):
        manager.register(Level2Event)


def test_event_info_records_notifiers(manager, recorder):
    owner = Owner([])
    function = recorder.listener("f")
    manager.connect(Level1Event, function, filter={"a": 1}, priority=3)
    manager.connect(Level1Event, owner.on_event)
    info = manager.get_event(Level1Event)
    first, second = info.listeners
    assert isinstance(first, CallableNotifier)
    assert first.func is function
    assert first.filter == {"a": 1}
    assert first.priority == 3
    assert isinstance(second, MethodNotifier)
    assert second.instance_ref() is owner
    assert second.filter is None
    assert first.count < second.count
    assert info.get_listeners() == [function, owner.on_event]
    assert "Level1Event" in repr(info)


def test_filter_is_copied_at_connect(manager, recorder):
    criteria = {"colour": "red"}
    manager.connect(Level1Event, recorder.listener("x"), filter=criteria)
    criteria["colour"] = "blue"
    manager.emit(Level1Event(colour="red"))
    assert recorder.tags() == ["x"]


def test_get_listeners_for_class_and_instance(manager, recorder):
    red = recorder.listener("red")
    anything = recorder.listener("any")
    deep = recorder.listener("deep")
    manager.connect(Level1Event, red, filter={"colour": "red"}, priority=1)
    manager.connect(Level1Event, anything)
    manager.connect(Level3Event, deep)
    assert list(manager.get_listeners(Level2Event)) == [red, anything]
    assert list(manager.get_listeners(Level3Event)) == [red, anything, deep]
    assert list(manager.get_listeners(Level2Event(colour="blue"))) == [anything]
    assert list(manager.get_listeners(Level2Event(colour="red"))) == [red, anything]
    # ``cls`` chooses the hierarchy; the instance still provides the filter values.
    assert list(manager.get_listeners(Level2Event(colour="blue"), cls=Level3Event)) == [anything, deep]
    assert recorder.calls == []


# -- bound methods and weak references ---------------------------------------


def test_bound_method_listener_and_fresh_bound_method_identity(manager):
    calls = []
    owner = Owner(calls)
    manager.connect(Level1Event, owner.on_event)
    manager.connect(Level1Event, owner.on_event)  # a new bound-method object: same listener
    manager.emit(Level1Event())
    assert len(calls) == 1
    assert len(manager.get_event(Level1Event).listeners) == 1
    manager.disconnect(Level1Event, owner.on_event)
    manager.emit(Level1Event())
    assert len(calls) == 1


def test_bound_methods_of_two_instances_are_distinct(manager):
    calls = []
    one, two = Owner(calls, "one"), Owner(calls, "two")
    manager.connect(Level1Event, one.on_event)
    manager.connect(Level1Event, two.on_event)
    manager.emit(Level1Event())
    assert [tag for tag, _ in calls] == ["one", "two"]
    manager.disconnect(Level1Event, one.on_event)
    with pytest.raises(KeyError):
        manager.disconnect(Level1Event, one.on_event)
    calls.clear()
    manager.emit(Level1Event())
    assert [tag for tag, _ in calls] == ["two"]


def test_bound_method_instance_is_held_weakly_and_auto_disconnected(manager, collect):
    calls = []
    owner = Owner(calls)
    survivor = Owner(calls, "survivor")
    manager.connect(Level1Event, owner.on_event)
    manager.connect(Level1Event, survivor.on_event)
    manager.emit(Level1Event())  # builds and caches a plan holding the method
    assert manager.has_listeners(Level1Event)
    version = manager.version
    owner_ref = weakref.ref(owner)
    del owner
    collect()
    assert owner_ref() is None, "the manager kept the listener's instance alive"
    assert manager.version != version
    calls.clear()
    manager.emit(Level1Event())
    assert [tag for tag, _ in calls] == ["survivor"]
    assert len(manager.get_event(Level1Event).listeners) == 1
    assert list(manager.get_listeners(Level1Event)) == [survivor.on_event]


def test_has_listeners_false_after_only_instance_dies(manager, collect):
    owner = Owner([])
    manager.connect(Level2Event, owner.on_event)
    assert manager.has_listeners(Level3Event)
    del owner
    collect()
    assert not manager.has_listeners(Level3Event)
    assert not manager.has_listeners(Level2Event)


def test_classmethod_listener(manager):
    class Handler(object):
        seen = []

        @classmethod
        def handle(cls, event):
            cls.seen.append(event)

    manager.connect(Level1Event, Handler.handle)
    manager.emit(Level1Event())
    assert len(Handler.seen) == 1
    manager.disconnect(Level1Event, Handler.handle)
    manager.emit(Level1Event())
    assert len(Handler.seen) == 1


def test_bound_method_of_non_weakrefable_instance_raises_type_error(manager):
    class Slotted(object):
        __slots__ = ()

        def on_event(self, event):
            pass

    with pytest.raises(TypeError):
        manager.connect(Level1Event, Slotted().on_event)
    assert not manager.has_listeners(Level1Event)


def test_dead_listener_in_a_running_dispatch_is_skipped(manager, collect):
    calls = []
    victim = Owner(calls, "victim")
    holder = {"victim": victim}
    del victim

    def killer(event):
        holder.clear()
        collect()

    manager.connect(Level1Event, killer, priority=1)
    manager.connect(Level1Event, holder["victim"].on_event)
    assert len(list(manager.get_listeners(Level1Event))) == 2
    manager.emit(Level1Event())
    assert calls == []
    assert list(manager.get_listeners(Level1Event)) == [killer]


# -- handled events, hooks ----------------------------------------------------


class HookedEvent(Level1Event):
    def __init__(self, log, **kwargs):
        super().__init__(**kwargs)
        self.log = log

    def pre_emit(self):
        self.log.append("pre")

    def post_emit(self):
        self.log.append("post")


def test_mark_as_handled_stops_lower_priority_listeners(manager, recorder):
    def handler(event):
        recorder.calls.append(("handler", event))
        event.mark_as_handled()

    manager.connect(Level2Event, handler, priority=100)
    manager.connect(Level1Event, recorder.listener("low"), priority=50)
    manager.emit(Level2Event())
    assert recorder.tags() == ["handler"]
    recorder.calls.clear()
    manager.emit(Level1Event())
    assert recorder.tags() == ["low"]


def test_mark_as_handled_stops_later_listeners_of_same_priority(manager, recorder):
    manager.connect(Level1Event, recorder.listener("first"))
    manager.connect(Level1Event, lambda event: event.mark_as_handled())
    manager.connect(Level1Event, recorder.listener("after"))
    event = Level1Event()
    manager.emit(event)
    assert recorder.tags() == ["first"]
    assert event._handled


def test_mark_as_handled_on_the_method_path(manager, recorder):
    class Handler(object):
        def handle(self, event):
            event.mark_as_handled()

    handler = Handler()
    manager.connect(Level1Event, handler.handle, priority=1)
    manager.connect(Level1Event, recorder.listener("after"))
    manager.emit(Level1Event())
    assert recorder.calls == []


def test_pre_and_post_emit_hooks_surround_dispatch(manager):
    log = []
    manager.connect(Level1Event, lambda event: log.append("listener"))
    manager.emit(HookedEvent(log))
    assert log == ["pre", "listener", "post"]


def test_hooks_run_with_no_listeners(manager):
    log = []
    manager.emit(HookedEvent(log))
    assert log == ["pre", "post"]


def test_post_emit_runs_when_handled(manager):
    log = []
    manager.connect(Level1Event, lambda event: event.mark_as_handled())
    manager.emit(HookedEvent(log))
    assert log == ["pre", "post"]


# -- failing listeners ----------------------------------------------------------


def test_listener_exception_is_logged_and_dispatch_continues(manager, recorder, caplog):
    def broken(event):
        raise RuntimeError("listener failure")

    manager.connect(Level1Event, recorder.listener("before"), priority=1)
    manager.connect(Level1Event, broken)
    manager.connect(Level1Event, recorder.listener("after"), priority=-1)
    with caplog.at_level(logging.WARNING, logger="encore.events.event_manager"):
        manager.emit(Level1Event())
    assert recorder.tags() == ["before", "after"]
    failures = [r for r in caplog.records if r.name == "encore.events.event_manager"]
    assert len(failures) == 1
    record = failures[0]
    assert record.levelno == logging.WARNING
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert "broken" in record.getMessage()
    assert "listener failure" in caplog.text


def test_bound_method_exception_is_logged(manager, recorder, caplog):
    class Broken(object):
        def on_event(self, event):
            raise ValueError("method failure")

    broken = Broken()
    manager.connect(Level1Event, broken.on_event, filter={"x": 1})
    manager.connect(Level1Event, recorder.listener("after"), priority=-1)
    with caplog.at_level(logging.WARNING, logger="encore.events.event_manager"):
        manager.emit(Level1Event(x=1))
    assert recorder.tags() == ["after"]
    assert any(
        r.exc_info and r.exc_info[0] is ValueError and "on_event" in r.getMessage()
        for r in caplog.records
    )


def test_base_exception_is_not_swallowed(manager):
    def exiting(event):
        raise KeyboardInterrupt

    manager.connect(Level1Event, exiting)
    with pytest.raises(KeyboardInterrupt):
        manager.emit(Level1Event())


# -- enable / disable -------------------------------------------------------------


def test_disable_affects_class_and_subclasses(manager, recorder):
    manager.connect(Level1Event, recorder.listener("top"))
    manager.disable(Level2Event)
    assert manager.is_enabled(Level1Event)
    assert not manager.is_enabled(Level2Event)
    assert not manager.is_enabled(Level3Event)
    manager.emit(Level1Event())
    manager.emit(Level2Event())
    manager.emit(Level3Event())
    assert [type(event) for _, event in recorder.calls] == [Level1Event]
    manager.enable(Level2Event)
    manager.emit(Level3Event())
    assert [type(event) for _, event in recorder.calls] == [Level1Event, Level3Event]


def test_disable_base_event_disables_everything(manager, recorder):
    manager.connect(Level1Event, recorder.listener("x"))
    manager.disable(BaseEvent)
    manager.emit(Level3Event())
    manager.emit(UnrelatedEvent())
    assert recorder.calls == []
    assert not manager.is_enabled(UnrelatedEvent)


def test_subclass_flag_survives_enabling_an_ancestor(manager, recorder):
    manager.connect(Level1Event, recorder.listener("x"))
    manager.disable(Level3Event)
    manager.disable(Level2Event)
    manager.enable(Level2Event)
    assert manager.is_enabled(Level2Event)
    assert not manager.is_enabled(Level3Event)
    manager.emit(Level3Event())
    manager.emit(Level2Event())
    assert [type(event) for _, event in recorder.calls] == [Level2Event]


def test_disabled_class_runs_no_hooks(manager):
    log = []
    manager.connect(Level1Event, lambda event: log.append("listener"))
    manager.disable(HookedEvent)
    manager.emit(HookedEvent(log))
    assert log == []


def test_enable_and_is_enabled_of_unknown_classes(manager):
    assert manager.is_enabled(Level3Event)
    manager.enable(Level3Event)
    assert manager.is_enabled(Level3Event)
    assert Level3Event in manager.event_map


def test_disabled_ancestor_mixin(manager, recorder):
    manager.connect(Level1Event, recorder.listener("x"))
    manager.disable(Mixin)
    manager.emit(MixedEvent())
    manager.emit(Level1Event())
    assert [type(event) for _, event in recorder.calls] == [Level1Event]


# -- has_listeners and the plan cache --------------------------------------------


def test_has_listeners(manager):
    assert not manager.has_listeners(Level3Event)
    listener = lambda event: None  # noqa: E731
    manager.connect(Level2Event, listener)
    assert not manager.has_listeners(Level1Event)
    assert manager.has_listeners(Level2Event)
    assert manager.has_listeners(Level3Event)
    manager.disable(Level3Event)
    assert not manager.has_listeners(Level3Event)
    assert manager.has_listeners(Level2Event)
    manager.enable(Level3Event)
    assert manager.has_listeners(Level3Event)
    manager.disconnect(Level2Event, listener)
    assert not manager.has_listeners(Level3Event)


def test_has_listeners_counts_filtered_listeners(manager):
    manager.connect(Level1Event, lambda event: None, filter={"never": "matches"})
    assert manager.has_listeners(Level1Event)


def test_version_changes_on_every_kind_of_change(manager):
    listener = lambda event: None  # noqa: E731
    seen = [manager.version]
    for action in (
        lambda: manager.connect(Level1Event, listener),
        lambda: manager.disable(Level1Event),
        lambda: manager.enable(Level1Event),
        lambda: manager.disconnect(Level1Event, listener),
    ):
        action()
        assert manager.version not in seen
        seen.append(manager.version)
    manager.emit(Level1Event())
    manager.has_listeners(Level2Event)
    assert manager.version == seen[-1]


# -- tracing ----------------------------------------------------------------------


def test_trace_sees_every_operation(manager, recorder):
    traced = []

    def trace(name, method, args):
        traced.append((name, method, args))

    listener = recorder.listener("x")
    manager.set_trace(trace)
    manager.connect(Level1Event, listener, {"a": 1}, 2)
    event = Level1Event(a=1)
    manager.emit(event)
    manager.disconnect(Level1Event, listener)
    assert traced == [
        ("connect", manager.connect, (Level1Event, listener, {"a": 1}, 2)),
        ("emit", manager.emit, (event,)),
        ("listen", listener, (event,)),
        ("disconnect", manager.disconnect, (Level1Event, listener)),
    ]
    assert recorder.tags() == ["x"]


def test_trace_can_veto_operations(manager, recorder):
    vetoed = set()

    def trace(name, method, args):
        return name in vetoed

    keep = recorder.listener("keep")
    manager.set_trace(trace)
    vetoed.add("connect")
    manager.connect(Level1Event, recorder.listener("vetoed"))
    vetoed.clear()
    manager.connect(Level1Event, keep)
    manager.emit(Level1Event())
    assert recorder.tags() == ["keep"]

    vetoed.add("emit")
    manager.emit(Level1Event())
    assert recorder.tags() == ["keep"]
    vetoed.clear()

    vetoed.add("disconnect")
    manager.disconnect(Level1Event, keep)
    vetoed.clear()
    manager.emit(Level1Event())
    assert recorder.tags() == ["keep", "keep"]

    manager.set_trace(None)
    manager.disconnect(Level1Event, keep)
    manager.emit(Level1Event())
    assert recorder.tags() == ["keep", "keep"]


def test_trace_can_veto_single_listeners(manager, recorder):
    skipped = recorder.listener("skipped")
    owner_calls = []
    owner = Owner(owner_calls)
    manager.connect(Level1Event, recorder.listener("first"), priority=2)
    manager.connect(Level1Event, skipped, priority=1)
    manager.connect(Level1Event, owner.on_event)
    manager.connect(Level1Event, recorder.listener("last"), priority=-1)
    listened = []

    def trace(name, method, args):
        if name == "listen":
            listened.append(method)
            return method is skipped or method == owner.on_event
        return False

    manager.set_trace(trace)
    manager.emit(Level1Event())
    assert recorder.tags() == ["first", "last"]
    assert owner_calls == []
    assert listened[2] == owner.on_event  # methods are traced as bound methods
    assert len(listened) == 4


def test_logging_tracer_logs_and_never_vetoes(manager, recorder, caplog):
    from encore.events.event_manager import LoggingTracer

    tracer = LoggingTracer()
    assert tracer("emit", manager.emit, ()) is None
    manager.set_trace(tracer)
    listener = recorder.listener("x")
    with caplog.at_level(logging.INFO, logger="encore.events.event_manager"):
        manager.connect(Level1Event, listener)
        manager.emit(Level1Event())
        manager.disconnect(Level1Event, listener)
    assert recorder.tags() == ["x"]
    messages = [r.getMessage() for r in caplog.records
                if r.name == "encore.events.event_manager" and r.levelno == logging.INFO]
    assert [m.split(":")[0] for m in messages] == ["connect", "emit", "listen", "disconnect"]


def test_logging_tracer_custom_logger_and_level(manager, caplog):
    from encore.events.event_manager import LoggingTracer

    custom = logging.getLogger("tests.events.tracer")
    manager.set_trace(LoggingTracer(custom, logging.DEBUG))
    with caplog.at_level(logging.DEBUG, logger="tests.events.tracer"):
        manager.emit(Level1Event())
    records = [r for r in caplog.records if r.name == "tests.events.tracer"]
    assert len(records) == 1
    assert records[0].levelno == logging.DEBUG
    assert records[0].getMessage().startswith("emit")


# -- re-entrancy and changes during dispatch ---------------------------------------


def test_reentrant_emit_is_depth_first(manager):
    order = []

    def outer(event):
        order.append(("outer", event.depth))
        if event.depth < 2:
            manager.emit(Level1Event(depth=event.depth + 1))
        order.append(("outer-done", event.depth))

    def second(event):
        order.append(("second", event.depth))

    manager.connect(Level1Event, outer, priority=1)
    manager.connect(Level1Event, second)
    manager.emit(Level1Event(depth=0))
    assert order == [
        ("outer", 0),
        ("outer", 1),
        ("outer", 2),
        ("outer-done", 2),
        ("second", 2),
        ("outer-done", 1),
        ("second", 1),
        ("outer-done", 0),
        ("second", 0),
    ]


def test_connect_and_disconnect_during_dispatch_do_not_disturb_it(manager, recorder):
    late = recorder.listener("late")
    newcomer = recorder.listener("newcomer")

    def meddler(event):
        recorder.calls.append(("meddler", event))
        manager.disconnect(Level1Event, late)
        manager.connect(Level1Event, newcomer, priority=10)
        manager.connect(Level2Event, newcomer, priority=-10)

    manager.connect(Level1Event, meddler, priority=5)
    manager.connect(Level1Event, late)
    manager.emit(Level2Event())
    assert recorder.tags() == ["meddler", "late"]
    recorder.calls.clear()
    manager.disconnect(Level1Event, meddler)
    manager.emit(Level2Event())
    assert recorder.tags() == ["newcomer", "newcomer"]


def test_listener_disconnecting_itself(manager, recorder):
    def once(event):
        recorder.calls.append(("once", event))
        manager.disconnect(Level1Event, once)

    manager.connect(Level1Event, once)
    manager.emit(Level1Event())
    manager.emit(Level1Event())
    assert recorder.tags() == ["once"]


def test_two_managers_are_independent(recorder):
    first, second = EventManager(), EventManager()
    first.connect(Level1Event, recorder.listener("first"))
    second.emit(Level1Event())
    second.disable(Level1Event)
    first.emit(Level1Event())
    assert recorder.tags() == ["first"]


def test_change_made_by_user_code_during_invalidation_is_not_lost(manager, recorder):
    # User code can run inside the manager's bookkeeping (here a metaclass
    # __eq__, in real life a finaliser run by the garbage collector).  A
    # disconnect made from there must still be honoured by the next emit.
    class Meta(type):
        hook = None

        def __eq__(cls, other):
            hook, Meta.hook = Meta.hook, None
            if hook is not None:
                hook()
            return cls is other

        __hash__ = type.__hash__

    class Hooked(BaseEvent, metaclass=Meta):
        pass

    class Other(BaseEvent):
        pass

    class Target(BaseEvent):
        pass

    stale = recorder.listener("stale")
    manager.connect(Hooked, recorder.listener("hooked"))
    manager.connect(Other, stale)
    manager.emit(Hooked())
    manager.emit(Other())  # both plans are cached now
    assert recorder.tags() == ["hooked", "stale"]
    Meta.hook = lambda: manager.disconnect(Other, stale)
    manager.connect(Target, recorder.listener("target"))
    assert Meta.hook is None, "the hook did not run during the connect"
    recorder.calls.clear()
    manager.emit(Other())
    manager.emit(Target())
    assert recorder.tags() == ["target"]

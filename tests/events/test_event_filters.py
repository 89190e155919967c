"""Listener filters: plain, dotted, missing attributes, and the filter index."""
import logging
import random

import pytest

from encore.events import event_manager as event_manager_module
from encore.events.event_manager import EventManager

from .helpers import Level1Event, Level2Event, Level3Event


class Named(object):
    def __init__(self, name, inner=None):
        self.name = name
        if inner is not None:
            self.inner = inner


def test_filter_on_attribute(manager, recorder):
    manager.connect(Level1Event, recorder.listener("red"), filter={"colour": "red"})
    manager.emit(Level1Event(colour="red"))
    manager.emit(Level1Event(colour="blue"))
    assert [event.colour for _, event in recorder.calls] == ["red"]


def test_filter_on_source_object(manager, recorder):
    mine, other = object(), object()
    manager.connect(Level1Event, recorder.listener("mine"), filter={"source": mine})
    manager.emit(Level2Event(source=other))
    manager.emit(Level2Event(source=mine))
    assert [event.source for _, event in recorder.calls] == [mine]


def test_all_filter_entries_must_match(manager, recorder):
    manager.connect(Level1Event, recorder.listener("x"), filter={"colour": "red", "size": 3})
    manager.emit(Level1Event(colour="red", size=4))
    manager.emit(Level1Event(colour="blue", size=3))
    manager.emit(Level1Event(colour="red", size=3))
    assert [(e.colour, e.size) for _, e in recorder.calls] == [("red", 3)]


def test_filter_uses_equality(manager, recorder):
    manager.connect(Level1Event, recorder.listener("x"), filter={"value": 1})
    manager.emit(Level1Event(value=1.0))
    manager.emit(Level1Event(value="1"))
    assert [e.value for _, e in recorder.calls] == [1.0]


def test_dotted_filter(manager, recorder):
    manager.connect(Level1Event, recorder.listener("x"), filter={"source.inner.name": "deep"})
    manager.emit(Level1Event(source=Named("top", Named("deep"))))
    manager.emit(Level1Event(source=Named("top", Named("shallow"))))
    assert [e.source.inner.name for _, e in recorder.calls] == ["deep"]


def test_missing_attribute_skips_listener_and_logs(manager, recorder, caplog):
    manager.connect(Level1Event, recorder.listener("filtered"), filter={"source.inner.name": "deep"})
    manager.connect(Level1Event, recorder.listener("plain"), priority=-1)
    with caplog.at_level(logging.INFO, logger="encore.events.event_manager"):
        manager.emit(Level1Event(source=Named("top")))  # no .inner
        manager.emit(Level1Event())  # source is None
    assert recorder.tags() == ["plain", "plain"]
    infos = [r for r in caplog.records
             if r.name == "encore.events.event_manager" and r.levelno == logging.INFO]
    assert len(infos) == 2
    assert "source.inner.name" in infos[0].getMessage()


def test_failing_attribute_or_comparison_skips_listener(manager, recorder, caplog):
    class Touchy(object):
        @property
        def value(self):
            raise RuntimeError("property failure")

    class Incomparable(object):
        def __eq__(self, other):
            raise RuntimeError("comparison failure")

    manager.connect(Level1Event, recorder.listener("attr"), filter={"source.value": 1})
    manager.connect(Level1Event, recorder.listener("cmp"), filter={"token": 1})
    manager.connect(Level1Event, recorder.listener("plain"), priority=-1)
    with caplog.at_level(logging.WARNING, logger="encore.events.event_manager"):
        manager.emit(Level1Event(source=Touchy(), token=Incomparable()))
    assert recorder.tags() == ["plain"]
    assert "comparison failure" in caplog.text
    assert "property failure" in caplog.text


def test_failing_attribute_with_index_skips_listeners(manager, recorder, caplog):
    class Touchy(object):
        @property
        def key(self):
            raise RuntimeError("property failure")

    for index in range(10):
        manager.connect(Level1Event, recorder.listener(index), filter={"source.key": index})
    manager.connect(Level1Event, recorder.listener("plain"), priority=-1)
    assert manager._plan(Level1Event).index is not None
    with caplog.at_level(logging.WARNING, logger="encore.events.event_manager"):
        manager.emit(Level1Event(source=Touchy()))
    assert recorder.tags() == ["plain"]
    assert "property failure" in caplog.text


def test_filter_keys_must_be_strings(manager):
    with pytest.raises(TypeError):
        manager.connect(Level1Event, lambda event: None, filter={1: "x"})
    with pytest.raises(TypeError):
        manager.connect(Level1Event, lambda event: None, filter={"": "x"})


def test_empty_filter_means_no_filter(manager, recorder):
    manager.connect(Level1Event, recorder.listener("x"), filter={})
    manager.emit(Level1Event())
    assert recorder.tags() == ["x"]


def test_many_filtered_listeners_only_matching_ones_called(manager, recorder):
    sources = [object() for _ in range(50)]
    for index, source in enumerate(sources):
        manager.connect(Level1Event, recorder.listener(index), filter={"source": source})
    manager.emit(Level1Event(source=sources[17]))
    manager.emit(Level1Event(source=object()))
    assert recorder.tags() == [17]


# -- equivalence of the indexed and the linear dispatch ---------------------------

CLASSES = [Level1Event, Level2Event, Level3Event]


class Loose(object):
    """Unhashable, yet equal to a hashable value: defeats a pure hash look-up."""

    __hash__ = None

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return other == self.value


def make_filter(rng):
    kind = rng.randrange(7)
    if kind == 0:
        return None
    if kind == 1:
        return {"key": rng.randrange(4)}
    if kind == 2:
        return {"key": rng.randrange(4), "colour": rng.choice(["red", "blue"])}
    if kind == 3:
        return {"tags": [rng.randrange(2)]}  # unhashable: never indexed
    if kind == 4:
        return {"source.name": rng.choice(["a", "b"])}
    if kind == 5:
        return {"absent.attr": 1}
    return {"colour": rng.choice(["red", "blue"]), "tags": [0]}


def make_event(rng):
    cls = rng.choice(CLASSES)
    attributes = {}
    if rng.random() < 0.8:
        attributes["key"] = rng.choice([0, 1, 2, 3, 1.0, [1], Loose(2)])
    if rng.random() < 0.8:
        attributes["colour"] = rng.choice(["red", "blue"])
    if rng.random() < 0.5:
        attributes["tags"] = [rng.randrange(2)]
    if rng.random() < 0.7:
        attributes["source"] = Named(rng.choice(["a", "b"]))
    return cls(**attributes)


def reference_matches(event, filter):
    if not filter:
        return True
    for path, expected in filter.items():
        value = event
        for name in path.split("."):
            if not hasattr(value, name):
                return False
            value = getattr(value, name)
        if value != expected:
            return False
    return True


def run_random_scenario(seed, manager):
    rng = random.Random(seed)
    connections = []
    calls = []
    for number in range(60):
        cls = rng.choice(CLASSES)
        filter = make_filter(rng)
        priority = rng.randrange(-2, 3)

        def listener(event, number=number):
            calls.append(number)

        manager.connect(cls, listener, filter=filter, priority=priority)
        connections.append((number, cls, filter, priority))
    mismatches = []
    for _ in range(200):
        event = make_event(rng)
        del calls[:]
        manager.emit(event)
        expected = [
            number
            for number, cls, filter, priority in sorted(connections, key=lambda c: (-c[3], c[0]))
            if isinstance(event, cls) and reference_matches(event, filter)
        ]
        if calls != expected:
            mismatches.append((event, calls[:], expected))
    return mismatches


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_indexed_dispatch_matches_reference(seed):
    manager = EventManager()
    assert run_random_scenario(seed, manager) == []
    # The scenario is large enough for the filter index to be in use.
    plan = manager._plans[Level3Event]
    assert plan.index is not None


@pytest.mark.parametrize("seed", [1, 2])
def test_linear_dispatch_matches_reference(seed, monkeypatch):
    monkeypatch.setattr(event_manager_module, "INDEX_THRESHOLD", 10 ** 6)
    manager = EventManager()
    assert run_random_scenario(seed, manager) == []
    assert manager._plans[Level3Event].index is None


def test_indexed_dispatch_respects_handled_and_priorities(manager, recorder):
    for index in range(20):
        manager.connect(Level1Event, recorder.listener(("low", index)), filter={"key": index % 2}, priority=0)

    def stopper(event):
        recorder.calls.append(("stop", event))
        event.mark_as_handled()

    manager.connect(Level1Event, recorder.listener("high"), filter={"key": 1}, priority=5)
    manager.connect(Level1Event, stopper, filter={"key": 1}, priority=1)
    manager.emit(Level1Event(key=0))
    assert recorder.tags() == [("low", index) for index in range(0, 20, 2)]
    recorder.calls.clear()
    manager.emit(Level1Event(key=1))
    assert recorder.tags() == ["high", "stop"]


def test_indexed_dispatch_logs_missing_attribute(manager, recorder, caplog):
    for index in range(10):
        manager.connect(Level1Event, recorder.listener(index), filter={"key": index})
    manager.connect(Level1Event, recorder.listener("plain"))
    with caplog.at_level(logging.INFO, logger="encore.events.event_manager"):
        manager.emit(Level1Event())
    assert recorder.tags() == ["plain"]
    assert any("'key'" in r.getMessage() for r in caplog.records)

"""Random sequences of operations checked against a simple reference model.

They exercise the cached dispatch plans: every change must be visible to the
next emit and to has_listeners/is_enabled, whatever was cached before.
"""
import random

import pytest

from encore.events.abstract_event_manager import BaseEvent
from encore.events.event_manager import EventManager


class Root(BaseEvent):
    pass


class Child(Root):
    pass


class GrandChild(Child):
    pass


class Sibling(Root):
    pass


class Mixin(object):
    pass


class Mixed(Child, Mixin):
    pass


CLASSES = [BaseEvent, Root, Child, GrandChild, Sibling, Mixin, Mixed]
EMITTABLE = [Root, Child, GrandChild, Sibling, Mixed]


class Model(object):
    """The specification, written as plainly as possible."""

    def __init__(self):
        self.connections = []  # [cls, listener_number, filter, priority, sequence]
        self.disabled = set()
        self.sequence = 0

    def connect(self, cls, number, filter, priority):
        self.connections = [c for c in self.connections if not (c[0] is cls and c[1] == number)]
        self.sequence += 1
        self.connections.append((cls, number, filter, priority, self.sequence))

    def disconnect(self, cls, number):
        kept = [c for c in self.connections if not (c[0] is cls and c[1] == number)]
        found = len(kept) != len(self.connections)
        self.connections = kept
        return found

    def is_enabled(self, cls):
        return not any(klass in self.disabled for klass in cls.__mro__)

    def listeners(self, cls):
        return sorted(
            (c for c in self.connections if c[0] in cls.__mro__), key=lambda c: (-c[3], c[4])
        )

    def emit(self, event):
        if not self.is_enabled(type(event)):
            return []
        return [
            c[1] for c in self.listeners(type(event))
            if c[2] is None or all(getattr(event, k, None) == v for k, v in c[2].items())
        ]


@pytest.mark.parametrize("seed", range(6))
def test_random_operations_match_the_model(seed):
    rng = random.Random(seed)
    manager = EventManager()
    model = Model()
    calls = []
    listeners = {}
    for number in range(12):
        def listener(event, number=number):
            calls.append(number)

        listeners[number] = listener

    for step in range(600):
        operation = rng.random()
        cls = rng.choice(CLASSES)
        if operation < 0.3:
            number = rng.randrange(12)
            filter = {"colour": rng.choice(["red", "blue"])} if rng.random() < 0.3 else None
            priority = rng.randrange(-1, 2)
            manager.connect(cls, listeners[number], filter=filter, priority=priority)
            model.connect(cls, number, filter, priority)
        elif operation < 0.45:
            number = rng.randrange(12)
            found = model.disconnect(cls, number)
            if found:
                manager.disconnect(cls, listeners[number])
            else:
                with pytest.raises(KeyError):
                    manager.disconnect(cls, listeners[number])
        elif operation < 0.5:
            manager.disable(cls)
            model.disabled.add(cls)
        elif operation < 0.6:
            manager.enable(cls)
            model.disabled.discard(cls)
        else:
            event_class = rng.choice(EMITTABLE)
            event = event_class(colour=rng.choice(["red", "blue"]))
            del calls[:]
            manager.emit(event)
            assert calls == model.emit(event), "step {}".format(step)
        probe = rng.choice(EMITTABLE)
        assert manager.is_enabled(probe) == model.is_enabled(probe)
        assert manager.has_listeners(probe) == (model.is_enabled(probe) and bool(model.listeners(probe)))

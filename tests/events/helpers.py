"""Event classes and small helpers shared by the event tests."""
from encore.events.abstract_event_manager import BaseEvent


class Level1Event(BaseEvent):
    """Top of the three-level test hierarchy."""


class Level2Event(Level1Event):
    """Middle of the three-level test hierarchy."""


class Level3Event(Level2Event):
    """Bottom of the three-level test hierarchy."""


class Recorder(object):
    """Collects what listeners saw, in call order."""

    def __init__(self):
        self.calls = []

    def listener(self, tag):
        def listen(event):
            self.calls.append((tag, event))

        listen.__name__ = "listen_{}".format(tag)
        return listen

    def tags(self):
        return [tag for tag, _ in self.calls]


class Owner(object):
    """An object whose bound method is used as a listener."""

    def __init__(self, calls, tag="owner"):
        self.calls = calls
        self.tag = tag

    def on_event(self, event):
        self.calls.append((self.tag, event))

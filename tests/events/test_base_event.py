"""BaseEvent and the BaseEventManager interface."""
import pytest

from encore.events.abstract_event_manager import BaseEvent, BaseEventManager
from encore.events.event_manager import EventManager

API_METHODS = ["connect", "disconnect", "emit", "enable", "disable", "is_enabled"]


class SaveEvent(BaseEvent):
    """An application event, as in the manual."""


def test_keyword_arguments_become_attributes():
    owner = object()
    event = SaveEvent(source=owner, directory="foo/bar", filename="baz.txt")
    assert event.source is owner
    assert event.directory == "foo/bar"
    assert event.filename == "baz.txt"


def test_source_is_positional_and_defaults_to_none():
    assert BaseEvent().source is None
    assert BaseEvent("me").source == "me"
    # A falsy source is kept as given, not replaced.
    assert BaseEvent(source=0).source == 0
    assert BaseEvent(source="").source == ""


def test_not_handled_until_marked():
    event = BaseEvent()
    assert event._handled is False
    assert event.mark_as_handled() is None
    assert event._handled is True


def test_hooks_do_nothing_by_default():
    event = BaseEvent(value=1)
    before = dict(vars(event))
    assert event.pre_emit() is None
    assert event.post_emit() is None
    assert vars(event) == before


def test_repr_shows_class_and_public_attributes():
    text = repr(SaveEvent(source=None, filename="baz.txt"))
    assert text.startswith("SaveEvent(")
    assert "filename='baz.txt'" in text
    assert "_handled" not in text


def test_repr_is_bounded_and_never_fails():
    class Unprintable(object):
        def __repr__(self):
            raise RuntimeError("no representation")

    text = repr(BaseEvent(source=Unprintable(), data=b"x" * 100000, nested=[[[[1]]]]))
    assert len(text) < 400
    assert "source=<" in text and "Unprintable" in text
    assert "data=b'xxx" in text and "..." in text


def test_events_of_one_class_do_not_share_attributes():
    first, second = SaveEvent(tags=["a"]), SaveEvent()
    assert not hasattr(second, "tags")
    assert first.source is None and second.source is None


def test_base_event_manager_declares_the_six_methods():
    assert BaseEventManager.__abstractmethods__ == frozenset(API_METHODS)
    with pytest.raises(TypeError):
        BaseEventManager()
    assert issubclass(EventManager, BaseEventManager)


class HalfManager(BaseEventManager):
    """A subclass that relies on the base implementations (Encore's style)."""

    def connect(self, cls, func, filter=None, priority=0):
        return super().connect(cls, func, filter, priority)

    def disconnect(self, cls, func):
        return super().disconnect(cls, func)

    def emit(self, event, block=True):
        return super().emit(event, block)

    def enable(self, cls):
        return super().enable(cls)

    def disable(self, cls):
        return super().disable(cls)

    def is_enabled(self, cls):
        return super().is_enabled(cls)


@pytest.mark.parametrize("name", API_METHODS)
def test_base_methods_raise_not_implemented(name):
    manager = HalfManager()
    method = getattr(manager, name)
    arguments = {
        "connect": (BaseEvent, print),
        "disconnect": (BaseEvent, print),
        "emit": (BaseEvent(),),
    }.get(name, (BaseEvent,))
    with pytest.raises(NotImplementedError):
        method(*arguments)

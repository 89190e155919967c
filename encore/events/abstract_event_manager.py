"""Abstract base classes of the event system.

This module defines :class:`BaseEvent`, the root of every event class, and
:class:`BaseEventManager`, the interface that every event manager offers.
"""
from __future__ import annotations

import abc
import logging
import reprlib
from typing import Any, Callable, Optional

logger = logging.getLogger(__name__)

_reprs = reprlib.Repr()
_reprs.maxstring = 80
_reprs.maxother = 80
_reprs.maxlevel = 3


def _short_repr(value: Any) -> str:
    """A bounded representation of an attribute value that never raises."""
    try:
        return _reprs.repr(value)
    except Exception:
        return "<{} object at {:#x}>".format(type(value).__name__, id(value))


class BaseEvent(object):
    """The root of the event class hierarchy.

    Listeners subscribe to an event class and receive every instance of that
    class and of its subclasses, so applications usually define small event
    hierarchies of their own.

    Parameters
    ----------
    source : object, optional
        The object that generated the event.  Defaults to ``None``.
    **kwargs
        Any further keyword arguments become attributes of the event.

    Attributes
    ----------
    source : object
        The object that generated the event.

    Notes
    -----
    Encore 0.8 replaced a missing ``source`` with a new empty list; here the
    default is ``None`` (see the differences page).
    """

    def __init__(self, source: Any = None, **kwargs: Any) -> None:
        self.source = source
        self._handled = False
        self.__dict__.update(kwargs)

    def mark_as_handled(self) -> None:
        """Mark the event as handled, so no lower-priority listener sees it.

        A listener calls this to stop the dispatch of the event: the event
        manager does not call any listener after the one that marked it.
        """
        self._handled = True

    def pre_emit(self) -> None:
        """Hook called by the event manager just before dispatch.

        The default does nothing; subclasses may override it, for example to
        record a timestamp.
        """

    def post_emit(self) -> None:
        """Hook called by the event manager after every listener has run.

        The default does nothing; subclasses may override it.
        """

    def __repr__(self) -> str:
        # Shown in logs and in the names of non-blocking emit threads: keep
        # it short whatever the attributes hold, and never fail.
        attrs = ", ".join(
            "{}={}".format(name, _short_repr(value))
            for name, value in sorted(self.__dict__.items())
            if not name.startswith("_")
        )
        return "{}({})".format(type(self).__name__, attrs)


def emit_held(manager: "BaseEventManager", event: BaseEvent) -> None:
    """Emit an event that was held back, as if it had never been dispatched.

    A transaction holds its modification events back -- sometimes by
    catching them with a listener that marks them as handled -- and emits
    them once it commits.  This clears the handled mark first, so that
    every listener receives the event.

    Parameters
    ----------
    manager : BaseEventManager
        Where to emit the event.
    event : BaseEvent
        The event held back.
    """
    event._handled = False
    manager.emit(event)


class BaseEventManager(abc.ABC):
    """The interface of an event manager.

    An event manager keeps, for every event class, the listeners connected
    to it, and dispatches emitted events to them.  Concrete managers
    implement the six abstract methods below and may override
    :meth:`has_listeners` to answer it cheaply;
    :class:`~encore.events.event_manager.EventManager` is the standard
    implementation.
    """

    def has_listeners(self, cls: type) -> bool:
        """Whether emitting an event of ``cls`` could reach any listener.

        Emitters ask this before building events in hot paths (a store
        asks before every modification and progress event), so a manager
        should answer it cheaply.  The answer may be ``True`` when in doubt
        but never ``False`` while a listener would receive the event.

        Parameters
        ----------
        cls : type
            The event class.

        Returns
        -------
        bool
            This default answers ``True`` (it cannot know); managers that
            can tell override it.
        """
        return True

    @abc.abstractmethod
    def connect(
        self,
        cls: type,
        func: Callable[[Any], Any],
        filter: Optional[dict] = None,
        priority: int = 0,
    ) -> None:
        """Connect a listener to an event class and its subclasses.

        Parameters
        ----------
        cls : type
            The event class (a subclass of :class:`BaseEvent`).
        func : callable
            Called with the event as its only argument.
        filter : dict, optional
            Maps attribute names (dotted paths allowed) to values; the
            listener is only called for events whose attributes are equal to
            every value given.
        priority : int, optional
            Listeners with a higher priority are called first.

        Raises
        ------
        NotImplementedError
            Always, in this base class: concrete managers override the method.
        """
        raise NotImplementedError

    @abc.abstractmethod
    def disconnect(self, cls: type, func: Callable[[Any], Any]) -> None:
        """Disconnect a listener from an event class.

        Parameters
        ----------
        cls : type
            The event class the listener was connected to.
        func : callable
            The listener.

        Raises
        ------
        KeyError
            If ``func`` is not connected to ``cls``.
        NotImplementedError
            Always, in this base class: concrete managers override the method.
        """
        raise NotImplementedError

    @abc.abstractmethod
    def emit(self, event: BaseEvent, block: bool = True):
        """Dispatch an event to the listeners of its class hierarchy.

        Parameters
        ----------
        event : BaseEvent
            The event to dispatch.
        block : bool, optional
            When ``False`` the dispatch happens on a new thread.

        Returns
        -------
        threading.Thread or None
            The dispatching thread when ``block`` is ``False``.

        Raises
        ------
        NotImplementedError
            Always, in this base class: concrete managers override the method.
        """
        raise NotImplementedError

    @abc.abstractmethod
    def enable(self, cls: type) -> None:
        """Enable the dispatch of events of a class.

        Parameters
        ----------
        cls : type
            The event class.

        Raises
        ------
        NotImplementedError
            Always, in this base class: concrete managers override the method.
        """
        raise NotImplementedError

    @abc.abstractmethod
    def disable(self, cls: type) -> None:
        """Disable the dispatch of events of a class and its subclasses.

        Parameters
        ----------
        cls : type
            The event class.

        Raises
        ------
        NotImplementedError
            Always, in this base class: concrete managers override the method.
        """
        raise NotImplementedError

    @abc.abstractmethod
    def is_enabled(self, cls: type) -> bool:
        """Whether events of a class are dispatched.

        Parameters
        ----------
        cls : type
            The event class.

        Returns
        -------
        bool
            ``False`` if the class or any of its ancestors is disabled.

        Raises
        ------
        NotImplementedError
            Always, in this base class: concrete managers override the method.
        """
        raise NotImplementedError

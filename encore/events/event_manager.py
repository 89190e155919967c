"""The standard event manager.

:class:`EventManager` keeps, for every event class, the listeners connected to
it, and dispatches an emitted event to the listeners of the event's class and
of all its ancestors, in one order: by priority (highest first), then by the
order in which they were connected.

How it stays fast
-----------------
For every event class that has been emitted the manager caches a *dispatch
plan*: whether the class is enabled, and the merged, sorted listeners of the
class and its ancestors.  A change (connect, disconnect, enable, disable)
drops the plans of the changed class and its subclasses, the death of an
instance whose bound method listens drops them all, and each bumps
:attr:`EventManager.version`.  So emitting an event is one dictionary
look-up followed by the calls themselves.  Listener lists are never modified
in place: a change builds a new tuple, so a dispatch that is running keeps the
snapshot it started with.  When many listeners filter on the same attribute,
the plan also indexes them by the value they expect, so only the matching ones
are examined.
"""
from __future__ import annotations

import itertools
import logging
import threading
import weakref
from bisect import insort
from types import BuiltinMethodType, MethodType, MethodWrapperType
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from .abstract_event_manager import BaseEvent, BaseEventManager

logger = logging.getLogger(__name__)
_module_logger = logger

__all__ = [
    "EventManager",
    "EventInfo",
    "CallableNotifier",
    "MethodNotifier",
    "LoggingTracer",
]

Listener = Callable[[BaseEvent], Any]
TraceFunction = Callable[[str, Callable, tuple], Any]

#: Below this many filtered listeners a plan evaluates the filters one by one;
#: from this many on it indexes them by the value they expect.
INDEX_THRESHOLD = 8

_MISSING = object()

_BOUND_BUILTIN_TYPES = (BuiltinMethodType, MethodWrapperType)


#: A connection filter split into ``(path, value)`` pairs (see `_split_filter`).
_FilterItems = Tuple[Tuple[Tuple[str, ...], Any], ...]

#: What a notifier puts in a listener list: ``(function, instance ref or None,
#: filter items or None, notifier)``.
_Entry = Tuple[Callable[..., Any], Optional["weakref.ref[Any]"], Optional[_FilterItems], Any]


def _split_filter(filter: Optional[Mapping[str, Any]]) -> Optional[_FilterItems]:
    """Turn ``{'a.b': v}`` into ``((('a', 'b'), v),)``, sorted by path."""
    if not filter:
        return None
    items = []
    for path, value in filter.items():
        if not isinstance(path, str) or not path:
            raise TypeError("filter keys must be non-empty attribute paths, got {!r}".format(path))
        items.append((tuple(path.split(".")), value))
    items.sort(key=lambda item: item[0])
    return tuple(items)


def _resolve(event: BaseEvent, path: Tuple[str, ...]) -> Any:
    """Follow a dotted attribute path from the event; ``_MISSING`` if absent."""
    value: Any = event
    try:
        for name in path:
            value = getattr(value, name)
    except AttributeError:
        return _MISSING
    return value


def _filter_matches(event: BaseEvent, items, listener_info: Any) -> bool:
    """Whether every ``(path, value)`` of a split filter holds for the event."""
    for path, expected in items:
        try:
            value = _resolve(event, path)
            if value is _MISSING:
                logger.info(
                    "Event %r has no attribute %r: listener %r skipped",
                    event, ".".join(path), listener_info,
                )
                return False
            if not (value == expected):
                return False
        except Exception:
            # A property or an __eq__ that fails is the event's problem, not
            # the dispatch's: skip this listener, keep going with the others.
            logger.warning(
                "Checking attribute %r of event %r failed: listener %r skipped",
                ".".join(path), event, listener_info, exc_info=True,
            )
            return False
    return True


def _log_listener_failure(listener: Any, event: BaseEvent) -> None:
    # Called from inside an ``except`` block, so the traceback is attached.
    logger.warning(
        "Listener %r raised an exception while handling %r", listener, event, exc_info=True
    )


def _sort_key(notifier: Any) -> tuple:
    return notifier.key


def _is_hashable(value: Any) -> bool:
    try:
        hash(value)
    except Exception:
        return False
    return True


def _make_notifier(
    func: Listener,
    filter: Optional[Mapping[str, Any]],
    priority: int,
    notify: Optional[Callable[..., Any]],
) -> Any:
    """Wrap a listener in the notifier that suits it, ready to connect.

    Raises
    ------
    TypeError
        If ``func`` is not callable, or is a bound method whose instance
        cannot be weakly referenced.
    """
    if not callable(func):
        raise TypeError("listeners must be callable, got {!r}".format(func))
    if isinstance(func, MethodType):
        notifier: Any = MethodNotifier(func, notify)
    else:
        notifier = CallableNotifier(func, notify)
    if filter or priority:
        notifier._set_connection(filter, priority)
    return notifier


def _listener_id(func: Any) -> Any:
    """The identity of a listener (see :meth:`EventInfo.get_id`)."""
    if isinstance(func, MethodType):
        return (id(func.__self__), id(func.__func__))
    if isinstance(func, _BOUND_BUILTIN_TYPES):
        return (id(func.__self__), func.__name__)
    return id(func)


class CallableNotifier(object):
    """A listener held by a strong reference.

    Functions, lambdas, builtin methods and other callables are kept alive by
    the manager for as long as they are connected.  Calling the notifier
    calls the listener.

    Parameters
    ----------
    func : callable
        The listener.
    notify : callable, optional
        Called as ``notify(*args)`` when the listener goes away.  A strongly
        held listener never does; the parameter exists so that both
        notifiers are made the same way (see :class:`MethodNotifier`).
    args : tuple, optional
        The arguments given to ``notify``.

    Attributes
    ----------
    func : callable
        The listener.
    callback : callable or None
        The ``notify`` argument.
    args : tuple
        The ``args`` argument.
    filter : dict or None
        The filter of the connection (a private copy), or ``None``.
    priority : int
        The listener's priority.
    count : int
        The connection number, which orders listeners of equal priority.
    key : tuple
        ``(-priority, count)``, the sort key of the listener.
    """

    __slots__ = (
        "func", "callback", "args", "filter", "filter_items", "priority", "count", "key",
        "dead", "entry", "__weakref__",
    )

    def __init__(self, func: Listener, notify: Optional[Callable[..., Any]] = None, args: tuple = ()) -> None:
        self.func = func
        self.callback = notify
        self.args = args if type(args) is tuple else tuple(args)
        self.dead = False
        # No filter, priority 0: what _set_connection(None, 0) would set.
        self.filter: Optional[Dict[str, Any]] = None
        self.filter_items: Optional[_FilterItems] = None
        self.priority = self.count = 0
        self.key = (0, 0)
        self.entry: _Entry = (func, None, None, self)

    def _set_connection(self, filter: Optional[Mapping[str, Any]], priority: int, count: int = 0) -> None:
        # The connection's details, set by whoever connects the notifier.
        self.filter = dict(filter) if filter else None
        self.filter_items = _split_filter(filter)
        self.priority = priority
        self.count = count
        self.key = (-priority, count)
        self.entry = (self.func, None, self.filter_items, self)

    def __call__(self, *args: Any, **kwds: Any) -> Any:
        """Call the listener.

        Parameters
        ----------
        *args, **kwds
            Passed to the listener (the event, when dispatching).

        Returns
        -------
        object
            What the listener returns.
        """
        return self.func(*args, **kwds)

    def matches(self, func: Any) -> bool:
        """Whether ``func`` designates this listener.

        Parameters
        ----------
        func : callable
            A callable given to ``connect`` or ``disconnect``.

        Returns
        -------
        bool
            ``True`` if ``func`` is the held callable, or a bound method of
            the same builtin object and name (``some_list.append``).
        """
        if func is self.func:
            return True
        # Bound methods of builtin objects (``some_list.append``) are made
        # anew at each attribute access, like Python bound methods: compare
        # those by their object and function.  Anything else by identity, so
        # that two equal but distinct callable objects stay two listeners.
        if isinstance(func, _BOUND_BUILTIN_TYPES) and type(self.func) is type(func):
            return func.__self__ is self.func.__self__ and func.__name__ == self.func.__name__  # type: ignore[attr-defined]
        return False

    def resolve(self) -> Optional[Listener]:
        """Return the callable to call.

        Returns
        -------
        callable
            The held callable.
        """
        return self.func

    def __repr__(self) -> str:
        return "<{} {!r} priority={} filter={!r}>".format(
            type(self).__name__, self.func, self.priority, self.filter
        )


class MethodNotifier(object):
    """A bound method whose instance is held by a weak reference.

    The notifier does not keep the instance alive.  When the instance is
    garbage collected, :meth:`notify` runs: it marks the notifier dead and
    calls ``notify(*args)``; a manager uses that to forget the listener.
    Any bound method object of the same function and instance designates the
    same listener, so ``obj.method`` may be passed again to ``disconnect``.

    Parameters
    ----------
    meth : types.MethodType
        The bound method.
    notify : callable, optional
        Called as ``notify(*args)`` when the instance dies.
    args : tuple, optional
        The arguments given to ``notify``.

    Attributes
    ----------
    function : callable
        The function underlying the method (``meth.__func__``).
    instance_ref : weakref.ref
        A weak reference to the instance (``meth.__self__``).
    callback : callable or None
        The ``notify`` argument.
    args : tuple
        The ``args`` argument.
    filter : dict or None
        The filter of the connection, or ``None``.
    priority : int
        The listener's priority.
    count : int
        The connection number.
    key : tuple
        ``(-priority, count)``, the sort key of the listener.

    Raises
    ------
    TypeError
        If ``meth`` is not a bound method, or its instance cannot be weakly
        referenced.
    """

    __slots__ = (
        "function", "instance_ref", "callback", "args", "filter", "filter_items", "priority",
        "count", "key", "dead", "entry", "__weakref__",
    )

    def __init__(self, meth: MethodType, notify: Optional[Callable[..., Any]] = None, args: tuple = ()) -> None:
        if not isinstance(meth, MethodType):
            raise TypeError("MethodNotifier needs a bound method, got {!r}".format(meth))
        self.function = meth.__func__
        self.callback = notify
        self.args = args if type(args) is tuple else tuple(args)
        self.dead = False
        self.instance_ref = weakref.ref(meth.__self__, self.notify)
        self.filter: Optional[Dict[str, Any]] = None
        self.filter_items: Optional[_FilterItems] = None
        self.priority = self.count = 0
        self.key = (0, 0)
        self.entry: _Entry = (self.function, self.instance_ref, None, self)

    def _set_connection(self, filter: Optional[Mapping[str, Any]], priority: int, count: int = 0) -> None:
        self.filter = dict(filter) if filter else None
        self.filter_items = _split_filter(filter)
        self.priority = priority
        self.count = count
        self.key = (-priority, count)
        self.entry = (self.function, self.instance_ref, self.filter_items, self)

    def notify(self, ref: Optional[weakref.ref] = None) -> None:
        """Record that the instance died, and tell whoever asked to be told.

        This is the weak reference's callback.

        Parameters
        ----------
        ref : weakref.ref, optional
            The dead reference (unused).
        """
        self.dead = True
        callback = self.callback
        if callback is not None:
            callback(*self.args)

    def __call__(self, *args: Any, **kwds: Any) -> Any:
        """Call the method on its instance, if the instance is alive.

        Parameters
        ----------
        *args, **kwds
            Passed to the method (the event, when dispatching).

        Returns
        -------
        object
            What the method returns, or ``None`` once the instance died.
        """
        instance = self.instance_ref()
        if instance is None:
            return None
        return self.function(instance, *args, **kwds)

    def matches(self, func: Any) -> bool:
        """Whether ``func`` is a bound method of the same function and instance.

        Parameters
        ----------
        func : callable
            A callable given to ``connect`` or ``disconnect``.

        Returns
        -------
        bool
            ``True`` if ``func`` designates this listener.
        """
        return (
            isinstance(func, MethodType)
            and func.__func__ is self.function
            and func.__self__ is self.instance_ref()
        )

    def resolve(self) -> Optional[Listener]:
        """Return a bound method for the instance, or ``None`` once it died.

        Returns
        -------
        types.MethodType or None
            A fresh bound method, or ``None``.
        """
        instance = self.instance_ref()
        if instance is None:
            return None
        return MethodType(self.function, instance)

    def __repr__(self) -> str:
        return "<{} {!r} of {!r} priority={} filter={!r}>".format(
            type(self).__name__,
            getattr(self.function, "__qualname__", self.function),
            self.instance_ref(),
            self.priority,
            self.filter,
        )


class EventInfo(object):
    """The listeners and the disabled flag of one event class.

    An :class:`EventManager` keeps one per event class in its
    :attr:`~EventManager.event_map`, and the methods of such an EventInfo act
    through its manager (so the manager's dispatch sees every change at
    once).  An EventInfo made directly, ``EventInfo(cls)``, manages the
    listeners of its class by itself, as in Encore.

    Parameters
    ----------
    cls : type
        The event class.

    Attributes
    ----------
    cls : type
        The event class.
    listeners : tuple
        The notifiers (:class:`CallableNotifier` / :class:`MethodNotifier`)
        connected directly to the class, sorted by priority then connection
        order.  The tuple is replaced, never modified, on every change.
    disabled : bool
        The class's own disabled flag (ancestors are not considered here).
    """

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.listeners: tuple = ()
        self.disabled = False
        # The manager that owns this record (a weak reference), if any.
        self._owner: Optional[weakref.ref] = None
        self._lock = threading.RLock()
        self._count = itertools.count()

    def _manager(self) -> Optional["EventManager"]:
        owner = self._owner
        return None if owner is None else owner()

    def _update(self, change: Callable[[list], Any]) -> Any:
        """Replace :attr:`listeners` by a changed copy, dropping dead notifiers.

        The caller holds the lock.  The loop guards against a change made
        re-entrantly (by a finaliser running on this thread) while the copy
        was being built.
        """
        while True:
            old = self.listeners
            new = [notifier for notifier in old if not notifier.dead]
            result = change(new)
            if self.listeners is old:
                self.listeners = tuple(new)
                return result

    def _add(self, func: Listener, notifier: Any, count: int) -> None:
        # Replace any connection of ``func`` by ``notifier``; the caller
        # holds the lock.
        notifier.count = count
        notifier.key = (-notifier.priority, count)

        def change(listeners: list) -> None:
            listeners[:] = [n for n in listeners if not n.matches(func)]
            insort(listeners, notifier, key=_sort_key)

        self._update(change)

    def _remove(self, func: Listener) -> bool:
        # Remove the connection of ``func``; the caller holds the lock.
        def change(listeners: list) -> bool:
            kept = [n for n in listeners if not n.matches(func)]
            found = len(kept) != len(listeners)
            listeners[:] = kept
            return found

        return self._update(change)

    def get_id(self, func: Listener) -> Any:
        """Return the identity under which a listener is connected.

        Parameters
        ----------
        func : callable
            A listener.

        Returns
        -------
        hashable
            For a bound method, the pair of the ids of its instance and its
            function (so every bound method object of the same method has the
            same id); for anything else, ``id(func)``.
        """
        return _listener_id(func)

    def connect(self, func: Listener, filter: Optional[Mapping[str, Any]] = None, priority: int = 0) -> None:
        """Connect a listener to this class (and so to its subclasses).

        Connecting a listener again replaces its previous connection.  See
        :meth:`EventManager.connect` for the arguments.

        Parameters
        ----------
        func : callable
            The listener; a bound method is held weakly.
        filter : dict, optional
            Attribute paths of the event and the values they must equal.
        priority : int, optional
            Higher priorities are called first.

        Raises
        ------
        TypeError
            If ``func`` is not callable, or is a bound method whose instance
            cannot be weakly referenced.
        """
        manager = self._manager()
        if manager is not None:
            manager._connect_info(self, func, filter, priority)
            return
        notifier = _make_notifier(func, filter, priority, None)
        with self._lock:
            self._add(func, notifier, next(self._count))

    def disconnect(self, func: Listener) -> None:
        """Disconnect a listener from this class.

        Parameters
        ----------
        func : callable
            The listener (for a bound method, any bound method object of the
            same function and instance).

        Raises
        ------
        KeyError
            If ``func`` is not connected to this class.
        """
        manager = self._manager()
        if manager is not None:
            manager._disconnect_info(self, func)
            return
        with self._lock:
            if not self._remove(func):
                raise KeyError(func)

    def disable(self) -> None:
        """Set this class's disabled flag: its events (and its subclasses')
        are no longer dispatched."""
        manager = self._manager()
        if manager is not None:
            manager._set_disabled(self, True)
        else:
            self.disabled = True

    def enable(self) -> None:
        """Clear this class's disabled flag."""
        manager = self._manager()
        if manager is not None:
            manager._set_disabled(self, False)
        else:
            self.disabled = False

    def is_enabled(self) -> bool:
        """Whether this class's own flag allows dispatch.

        Ancestors are not considered: :meth:`EventManager.is_enabled` does
        that.

        Returns
        -------
        bool
            ``False`` after :meth:`disable`, until :meth:`enable`.
        """
        return not self.disabled

    def get_listeners(self, event: Any = None) -> List[Listener]:
        """Return the live listeners connected directly to this class.

        Parameters
        ----------
        event : BaseEvent or type, optional
            An event instance: only the listeners whose filter it satisfies
            are returned.  A class, or nothing: all of them.

        Returns
        -------
        list of callable
            In dispatch order (bound methods are rebuilt for live instances).
        """
        check = event is not None and not isinstance(event, type)
        result = []
        for notifier in self.listeners:
            items = notifier.filter_items
            if check and items is not None and not _filter_matches(event, items, notifier):
                continue
            listener = notifier.resolve()
            if listener is not None:
                result.append(listener)
        return result

    def __repr__(self) -> str:
        return "<EventInfo {} listeners={} disabled={}>".format(
            self.cls.__name__, len(self.listeners), self.disabled
        )


class _DispatchPlan(object):
    """The cached dispatch of one event class (see the module notes)."""

    __slots__ = ("hierarchy", "enabled", "entries", "funcs", "has_listeners", "index", "unindexed")

    def __init__(self, hierarchy: Tuple[type, ...], enabled: bool, notifiers: List[Any]) -> None:
        self.hierarchy = hierarchy
        self.enabled = enabled
        entries = tuple([notifier.entry for notifier in notifiers])
        self.entries = entries
        self.has_listeners = enabled and bool(entries)
        self.index: Optional[list] = None
        self.unindexed: tuple = ()
        filtered = 0
        simple = True
        for _, instance_ref, items, _ in entries:
            if items is not None:
                filtered += 1
                simple = False
            elif instance_ref is not None:
                simple = False
        # The common case: only strongly held callables without filters.
        self.funcs: Optional[tuple] = tuple([entry[0] for entry in entries]) if simple else None
        if filtered >= INDEX_THRESHOLD:
            indexable = [
                position for position, (_, _, items, _) in enumerate(entries)
                if items is not None and any(_is_hashable(value) for _, value in items)
            ]
            if len(indexable) >= INDEX_THRESHOLD:
                self._build_index(indexable)

    def _build_index(self, indexable: List[int]) -> None:
        tables: Dict[Tuple[str, ...], Tuple[dict, List[int]]] = {}
        indexed = set()
        for position in indexable:
            items = self.entries[position][2]
            path, value = next((p, v) for p, v in items if _is_hashable(v))
            table, positions = tables.setdefault(path, ({}, []))
            table.setdefault(value, []).append(position)
            positions.append(position)
            indexed.add(position)
        self.index = [(path, table, tuple(positions)) for path, (table, positions) in tables.items()]
        self.unindexed = tuple(p for p in range(len(self.entries)) if p not in indexed)

    def select(self, event: BaseEvent) -> List[tuple]:
        """The entries that may match the event, in dispatch order."""
        positions = list(self.unindexed)
        for path, table, all_positions in self.index:  # type: ignore[union-attr]
            try:
                value = _resolve(event, path)
            except Exception:
                # Let the per-listener check report the failure.
                positions.extend(all_positions)
                continue
            if value is _MISSING:
                logger.info(
                    "Event %r has no attribute %r: %d filtered listener(s) skipped",
                    event, ".".join(path), len(all_positions),
                )
                continue
            try:
                hits = table.get(value)
            except Exception:
                # An unhashable value (or a failing __hash__/__eq__): fall
                # back to checking every listener one by one.
                positions.extend(all_positions)
                continue
            if hits:
                positions.extend(hits)
        positions.sort()
        entries = self.entries
        return [entries[position] for position in positions]


class LoggingTracer(object):
    """A trace function that logs every traced operation.

    Install it with :meth:`EventManager.set_trace`.  It never vetoes.

    Parameters
    ----------
    logger : logging.Logger, optional
        Where to log; by default the :mod:`encore.events.event_manager`
        module's logger.
    level : int, optional
        The logging level, :data:`logging.INFO` by default.

    Attributes
    ----------
    logger : logging.Logger
        Where records go.
    level : int
        Their level.
    """

    def __init__(self, logger: Optional[logging.Logger] = logger, level: int = logging.INFO) -> None:
        self.logger = logger if logger is not None else _module_logger
        self.level = level

    def __call__(self, name: str, func: Callable, *args: Any, **kwds: Any) -> None:
        """Log one traced operation.

        Parameters
        ----------
        name : str
            ``'connect'``, ``'disconnect'``, ``'emit'`` or ``'listen'``.
        func : callable
            The manager method, or the listener for ``'listen'``.
        *args, **kwds
            The arguments of the operation (the manager passes them as one
            tuple).

        Returns
        -------
        None
            So that nothing is vetoed.
        """
        if kwds:
            self.logger.log(self.level, "%s: %r %r %r", name, func, args, kwds)
        elif len(args) == 1:
            self.logger.log(self.level, "%s: %r %r", name, func, args[0])
        else:
            self.logger.log(self.level, "%s: %r %r", name, func, args)
        return None


class EventManager(BaseEventManager):
    """The standard, thread-safe event manager.

    Listeners are connected to an event class and receive the events of that
    class and of its subclasses.  Emitting calls the matching listeners on the
    emitting thread, highest priority first, and in connection order within a
    priority.

    Attributes
    ----------
    event_map : dict
        Maps every registered event class to its :class:`EventInfo`.
    count : itertools.count
        Numbers the connections; the number orders equal priorities.
    version : int
        Changes on every connect, disconnect, enable, disable and on the
        automatic disconnection of a dead instance.

    Notes
    -----
    ``connect``, ``disconnect``, ``enable`` and ``disable`` take one
    manager-wide lock; ``emit`` takes no lock unless the class's dispatch
    plan must be rebuilt.  Listeners never run while the lock is held.
    """

    #: The manager this one forwards to once retired (see ``_retire``).
    _successor: Any = None

    #: Slicing ``cls.__mro__[:bmro_clip]`` gives the classes from ``cls`` up
    #: to :class:`BaseEvent` (Encore's name; :meth:`get_event_hierarchy` also
    #: keeps mixins that come after ``BaseEvent``).
    bmro_clip: int = -len(BaseEvent.__mro__) + 1

    def __init__(self) -> None:
        self.event_map: Dict[type, EventInfo] = {}
        self.count = itertools.count()
        self._trace_func: Optional[TraceFunction] = None
        self._lock = threading.RLock()
        self._versions = itertools.count()
        self.version = next(self._versions)
        self._plans: Dict[type, _DispatchPlan] = {}
        self._is_package_default = False
        self._configured = False
        self_ref = weakref.ref(self)

        def on_death(*args: Any, self_ref=self_ref) -> None:
            manager = self_ref()
            if manager is not None:
                manager._invalidate()

        self._on_death = on_death

    # -- internal helpers --------------------------------------------------

    def _invalidate(self, changed: Optional[type] = None) -> None:
        """Drop the cached plans a change may have made stale.

        With ``changed`` (the lock held), only the plans of classes whose
        hierarchy contains ``changed`` are dropped, by building a filtered
        copy of the cache.  Without it every plan is dropped: the weakref
        callback does that, possibly without the lock.  If anything else
        invalidated while the copy was being made (a finaliser running on
        this thread, or a weakref callback), the copy is not trusted and the
        whole cache is dropped instead.
        """
        version = next(self._versions)
        self.version = version
        if changed is None:
            self._plans = {}
            return
        plans = self._plans
        kept = {cls: plan for cls, plan in list(plans.items()) if changed not in plan.hierarchy}
        if self.version == version and self._plans is plans:
            self._plans = kept
        else:
            self._plans = {}

    def _info(self, cls: type) -> EventInfo:
        """Return the EventInfo of ``cls``, registering it if needed (lock held)."""
        info = self.event_map.get(cls)
        if info is None:
            if not isinstance(cls, type):
                raise TypeError("event classes must be classes, got {!r}".format(cls))
            info = self._new_info(cls)
            self.event_map[cls] = info
        return info

    def _new_info(self, cls: type) -> EventInfo:
        """An EventInfo for ``cls`` whose methods act through this manager."""
        info = EventInfo(cls)
        info._owner = weakref.ref(self)
        return info

    def _plan(self, cls: type) -> _DispatchPlan:
        plan = self._plans.get(cls)
        if plan is None:
            plan = self._build_plan(cls)
        return plan

    def _build_plan(self, cls: type) -> _DispatchPlan:
        if not isinstance(cls, type):
            raise TypeError("expected an event class, got {!r}".format(cls))
        with self._lock:
            # Take the cache first: if it is replaced while we compute, our
            # (possibly stale) plan lands in the discarded dictionary.
            plans = self._plans
            plan = plans.get(cls)
            if plan is not None:
                return plan
            enabled = True
            notifiers: List[Any] = []
            hierarchy = tuple(self.get_event_hierarchy(cls))
            event_map = self.event_map
            sources = 0
            for klass in hierarchy:
                info = event_map.get(klass)
                if info is None:
                    continue
                if info.disabled:
                    enabled = False
                listeners = info.listeners
                if listeners:
                    for notifier in listeners:
                        if notifier.dead:
                            info._update(lambda listeners: None)
                            listeners = info.listeners
                            break
                    notifiers.extend(listeners)
                    sources += 1
            if sources > 1:
                notifiers.sort(key=_sort_key)
            plan = _DispatchPlan(hierarchy, enabled, notifiers)
            plans[cls] = plan
            return plan

    def _is_pristine_default(self) -> bool:
        """Whether this is an untouched package default manager.

        True only for the manager created by
        :func:`~encore.events.package_globals.get_event_manager` when nothing
        was ever connected to it, no class was disabled and no trace function
        was set.  :func:`~encore.events.package_globals.set_event_manager` may
        replace such a manager.
        """
        return self._is_package_default and not self._configured

    def _retire(self, successor: Any) -> bool:
        """Hand over to ``successor`` if this is a pristine package default.

        Code that obtained this manager before it was replaced (a store that
        already emitted, a progress manager, a heartbeat) keeps a reference
        to it: from now on every call made on it is forwarded to the
        successor, so nothing is emitted into, or connected to, a manager
        nobody uses any more.

        Returns
        -------
        bool
            Whether the manager was retired; ``False`` if it is not a
            pristine package default.
        """
        with self._lock:
            if not self._is_pristine_default():
                return False
            self._successor = successor
            self.__class__ = _RetiredDefaultManager
            self._plans = {}
            return True

    # -- the API -----------------------------------------------------------

    def register(self, cls: type) -> None:
        """Register an event class with the manager.

        Registration is implicit in :meth:`connect`, :meth:`disable` and
        :meth:`enable`; calling it directly is rarely needed.

        Parameters
        ----------
        cls : type
            The event class.

        Raises
        ------
        ValueError
            If the class is already registered.
        TypeError
            If ``cls`` is not a class.
        """
        if not isinstance(cls, type):
            raise TypeError("event classes must be classes, got {!r}".format(cls))
        with self._lock:
            if cls in self.event_map:
                raise ValueError("Event class {!r} is already registered".format(cls))
            self.event_map[cls] = self._new_info(cls)

    def connect(
        self,
        cls: type,
        func: Listener,
        filter: Optional[Mapping[str, Any]] = None,
        priority: int = 0,
    ) -> None:
        """Connect a listener to an event class and its subclasses.

        Connecting a listener that is already connected to the same class
        replaces the old connection: the listener moves to the end of its
        (new) priority tier and only the new filter applies.

        Parameters
        ----------
        cls : type
            The event class.
        func : callable
            Called with the event as its only argument.  A bound method is
            held weakly: it is disconnected automatically when its instance is
            garbage collected.  Any other callable is held strongly.
        filter : dict, optional
            Maps attribute names of the event to the values they must equal
            for the listener to be called.  A name may be a dotted path
            (``'source.name'``); when an attribute along the path is missing
            the listener is skipped.
        priority : int, optional
            Higher priorities are called first; equal priorities are called in
            connection order.

        Raises
        ------
        TypeError
            If ``cls`` is not a class, ``func`` is not callable, or ``func`` is
            a bound method whose instance cannot be weakly referenced.
        """
        trace = self._trace_func
        if trace is not None and trace("connect", self.connect, (cls, func, filter, priority)):
            return
        notifier = _make_notifier(func, filter, priority, self._on_death)
        with self._lock:
            successor = self._successor
            if successor is None:
                self._connect_locked(self._info(cls), func, notifier)
        if successor is not None:
            # Retired (see _retire) while this call was on its way.
            successor.connect(cls, func, filter, priority)

    def _connect_locked(self, info: EventInfo, func: Listener, notifier: Any) -> None:
        """Connect ``notifier`` for ``func`` to ``info`` (the lock is held)."""
        # Number the connection under the lock, so numbers follow the
        # order in which connections take effect.
        info._add(func, notifier, next(self.count))
        self._configured = True
        self._invalidate(info.cls)

    def _connect_info(self, info: EventInfo, func: Listener, filter: Optional[Mapping[str, Any]],
                      priority: int) -> None:
        """``info.connect``: connect without tracing (as Encore's EventInfo did)."""
        notifier = _make_notifier(func, filter, priority, self._on_death)
        with self._lock:
            successor = self._successor
            if successor is None:
                self._connect_locked(info, func, notifier)
        if successor is not None:
            successor.connect(info.cls, func, filter, priority)

    def _disconnect_info(self, info: EventInfo, func: Listener) -> None:
        """``info.disconnect``: KeyError if ``func`` is not connected there."""
        with self._lock:
            successor = self._successor
            if successor is None:
                if not info._remove(func):
                    raise KeyError(func)
                self._invalidate(info.cls)
        if successor is not None:
            successor.disconnect(info.cls, func)

    def _set_disabled(self, info: EventInfo, disabled: bool) -> None:
        """``info.disable()`` / ``info.enable()``."""
        with self._lock:
            successor = self._successor
            if successor is None:
                info.disabled = disabled
                if disabled:
                    self._configured = True
                self._invalidate(info.cls)
        if successor is not None:
            (successor.disable if disabled else successor.enable)(info.cls)

    def disconnect(self, cls: type, func: Listener) -> None:
        """Disconnect a listener from an event class.

        Parameters
        ----------
        cls : type
            The class the listener was connected to.
        func : callable
            The listener (for a bound method, any bound method object of the
            same function and instance).

        Raises
        ------
        KeyError
            If the class is unknown to the manager or ``func`` is not connected
            to it.
        """
        trace = self._trace_func
        if trace is not None and trace("disconnect", self.disconnect, (cls, func)):
            return
        with self._lock:
            info = self.event_map.get(cls) if isinstance(cls, type) else None
            if info is None:
                raise KeyError(cls)
            if not info._remove(func):
                raise KeyError(func)
            self._invalidate(cls)

    def emit(self, event: BaseEvent, block: bool = True) -> Optional[threading.Thread]:
        """Dispatch an event to the listeners of its class and ancestors.

        Listeners run on the emitting thread, by priority then connection
        order.  The event's ``pre_emit`` hook runs before the first listener,
        ``post_emit`` after the last.  A listener that raises is logged (at
        WARNING, with the traceback) and dispatch continues.  A listener that
        calls ``event.mark_as_handled()`` stops the dispatch: no listener
        after it is called.  Nothing at all happens (not even the hooks) when
        the event's class or an ancestor is disabled.

        Parameters
        ----------
        event : BaseEvent
            The event.
        block : bool, optional
            When ``False``, dispatch on a new (non-daemon) thread, started
            before returning.

        Returns
        -------
        threading.Thread or None
            The dispatching thread when ``block`` is false, else ``None``.
        """
        if not block:
            try:
                description = str(event)
            except Exception:
                description = "<{} object at {:#x}>".format(type(event).__name__, id(event))
            thread = threading.Thread(
                target=self.emit, args=(event, True), name="Event emit: {}".format(description)
            )
            thread.start()
            return thread
        trace = self._trace_func
        if trace is not None and trace("emit", self.emit, (event,)):
            return None
        try:
            plan = self._plans[event.__class__]
        except KeyError:
            plan = self._build_plan(event.__class__)
        if not plan.enabled:
            return None
        funcs = plan.funcs
        event.pre_emit()
        if funcs is not None and trace is None:
            for func in funcs:
                try:
                    func(event)
                except Exception:
                    _log_listener_failure(func, event)
                if event._handled:
                    break
        elif plan.entries:
            self._dispatch(event, plan, trace)
        event.post_emit()
        return None

    def _dispatch(self, event: BaseEvent, plan: _DispatchPlan, trace: Optional[TraceFunction]) -> None:
        entries = plan.select(event) if plan.index is not None else plan.entries
        for call, instance_ref, items, notifier in entries:
            if items is not None and not _filter_matches(event, items, notifier):
                continue
            if instance_ref is None:
                if trace is not None and trace("listen", call, (event,)):
                    continue
                try:
                    call(event)
                except Exception:
                    _log_listener_failure(call, event)
            else:
                instance = instance_ref()
                if instance is None:
                    continue
                if trace is not None and trace("listen", MethodType(call, instance), (event,)):
                    continue
                try:
                    call(instance, event)
                except Exception:
                    _log_listener_failure(MethodType(call, instance), event)
            if event._handled:
                break

    def has_listeners(self, cls: type) -> bool:
        """Whether emitting an event of ``cls`` would reach any listener.

        Answered from the cached dispatch plan of the class (one look-up):
        ``True`` if the class is enabled and a listener is connected to it or
        to one of its ancestors.  Filters are not considered: a listener
        whose filter would reject the event still counts.
        """
        plan = self._plans.get(cls)
        if plan is None:
            plan = self._build_plan(cls)
        return plan.has_listeners

    def get_event(self, cls: Optional[type] = None):
        """Return the registration records.

        Parameters
        ----------
        cls : type, optional
            An event class.

        Returns
        -------
        dict or EventInfo
            The whole :attr:`event_map` when ``cls`` is ``None``, else the
            :class:`EventInfo` of ``cls``.

        Raises
        ------
        KeyError
            If ``cls`` is not registered.
        """
        if cls is None:
            return self.event_map
        return self.event_map[cls]

    def get_listeners(self, event: Any, cls: Optional[type] = None) -> Iterator[Listener]:
        """Iterate over the listeners an event or event class would reach.

        Parameters
        ----------
        event : BaseEvent or type
            An event instance, whose listeners are filtered with its
            attributes, or an event class, whose listeners are all listed.
        cls : type, optional
            The class whose hierarchy is used; defaults to the event's class
            (or ``event`` itself when it is a class).

        Yields
        ------
        callable
            The listeners in dispatch order (bound methods are rebuilt for
            live instances).  Whether the class is enabled is not considered.
        """
        is_class = isinstance(event, type)
        if cls is None:
            cls = event if is_class else type(event)
        plan = self._plan(cls)
        for call, instance_ref, items, notifier in plan.entries:
            if not is_class and items is not None and not _filter_matches(event, items, notifier):
                continue
            listener = notifier.resolve()
            if listener is not None:
                yield listener

    def disable(self, cls: type) -> None:
        """Stop dispatching events of a class and of its subclasses.

        Parameters
        ----------
        cls : type
            The event class.
        """
        with self._lock:
            successor = self._successor
            if successor is None:
                self._info(cls).disabled = True
                self._configured = True
                self._invalidate(cls)
        if successor is not None:
            successor.disable(cls)

    def enable(self, cls: type) -> None:
        """Clear the disabled flag of a class.

        Events of the class are dispatched again unless an ancestor is
        disabled too.

        Parameters
        ----------
        cls : type
            The event class.
        """
        with self._lock:
            self._info(cls).disabled = False
            self._invalidate(cls)

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
        """
        return self._plan(cls).enabled

    def get_event_hierarchy(self, cls: type) -> Tuple[type, ...]:
        """Return the classes whose listeners receive events of ``cls``.

        Parameters
        ----------
        cls : type
            The event class.

        Returns
        -------
        tuple of type
            ``cls.__mro__`` without :class:`object` (mixins included).
        """
        mro = cls.__mro__
        if mro[-1] is object:
            return mro[:-1]
        return tuple(klass for klass in mro if klass is not object)

    def set_trace(self, func: Optional[TraceFunction] = None) -> None:
        """Install (or with ``None`` remove) the trace function.

        The trace function is called as ``func(name, method, args)`` before
        each operation: ``('connect', manager.connect, (cls, func, filter,
        priority))``, ``('disconnect', manager.disconnect, (cls, func))``,
        ``('emit', manager.emit, (event,))`` and, for each listener about to
        be called, ``('listen', listener, (event,))``.  A true return value
        vetoes the operation (for ``'listen'``: that listener is skipped).

        Parameters
        ----------
        func : callable or None
            The trace function, e.g. a :class:`LoggingTracer`.
        """
        with self._lock:
            successor = self._successor
            if successor is None:
                if func is not None:
                    self._configured = True
                self._trace_func = func
        if successor is not None:
            successor.set_trace(func)


class _RetiredDefaultManager(EventManager):
    """A package default manager replaced by ``set_event_manager``.

    Every call is forwarded to the manager that replaced it (see
    :meth:`EventManager._retire`).
    """

    def register(self, cls: type) -> None:
        return self._successor.register(cls)

    def connect(self, cls: type, func: Listener, filter: Optional[Mapping[str, Any]] = None, priority: int = 0) -> None:
        return self._successor.connect(cls, func, filter, priority)

    def disconnect(self, cls: type, func: Listener) -> None:
        return self._successor.disconnect(cls, func)

    def emit(self, event: BaseEvent, block: bool = True) -> Optional[threading.Thread]:
        return self._successor.emit(event, block)

    def has_listeners(self, cls: type) -> bool:
        has_listeners = getattr(self._successor, "has_listeners", None)
        return True if has_listeners is None else has_listeners(cls)

    def get_event(self, cls: Optional[type] = None):
        return self._successor.get_event(cls)

    def get_listeners(self, event: Any, cls: Optional[type] = None) -> Iterator[Listener]:
        return self._successor.get_listeners(event, cls)

    def disable(self, cls: type) -> None:
        return self._successor.disable(cls)

    def enable(self, cls: type) -> None:
        return self._successor.enable(cls)

    def is_enabled(self, cls: type) -> bool:
        return self._successor.is_enabled(cls)

    def set_trace(self, func: Optional[TraceFunction] = None) -> None:
        return self._successor.set_trace(func)

    def _is_pristine_default(self) -> bool:
        return False

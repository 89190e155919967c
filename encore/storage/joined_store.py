"""A store presenting the union of several stores.

:class:`JoinedStore` layers stores on top of each other: reads look through
the stores in order and the first store holding a key wins (it *shadows* the
copies in later stores), while writes go into the first store.  The typical
use is a fast local store in front of a slower or remote one, or several
repositories overlaid into one view::

    local = DictMemoryStore()
    remote = SqliteStore("shared.db")
    store = JoinedStore([local, remote])
    store.connect()
    store.get("report")            # from local if it has it, else remote
    store.update_metadata("report", {"checked": True})   # copies it into local

Routing of the writes
---------------------

``set``
    Into ``stores[0]``; copies in later stores stay, shadowed.
``set_data``
    ``stores[0]`` if it holds the key; else, if a later store holds it, the
    new data and the metadata of the first holder are written into
    ``stores[0]`` (copy-on-write); else a new key in ``stores[0]``.
``set_metadata``
    ``stores[0]`` if it holds the key; else the data of the first holder is
    streamed into ``stores[0]`` with the new metadata (copy-on-write); else
    a new key in ``stores[0]``.
``update_metadata``
    ``stores[0]`` if it holds the key; else the first holder's data and
    merged metadata are streamed into ``stores[0]``; ``KeyError`` if no
    store holds it.
``delete``
    Every store holding the key, so that no shadowed copy reappears;
    ``KeyError`` if none holds it;
    :class:`~encore.storage.abstract_store.StoreError` (before anything is
    deleted) if a holder is read-only.
``multiset``, ``multiset_data``, ``multiset_metadata``, ``multiupdate_metadata``, ``from_file``, ``from_bytes``
    Through the single-key methods above, in one transaction.
``set_permissions``, ``update_permissions``
    The first store holding the key.

Reads probe the stores in order with ``exists`` and read from the first
holder (the last store is read without a probe).

Writes and transactions
-----------------------

The writes of a joined store are serialised by its transaction lock.  A
write that modifies one child (every write but a ``delete`` of several
copies) is a single write of that child, as atomic as the child makes it; a
copy-on-write is one ``set`` of ``stores[0]``, whose data streams from the
lower store.  A ``delete`` of several copies runs in a transaction of the
joined store, which opens a transaction on each child it deletes from, so it
is all-or-nothing where those children can roll back.  Inside
``with joined.transaction(...):`` every child written joins the transaction
(see :meth:`JoinedStore.transaction`).
"""
from __future__ import annotations

import contextlib
import io
import logging
import threading
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from .abstract_store import (
    AbstractAuthorizingStore,
    AbstractStore,
    AuthorizationError,
    StoreError,
    Value,
)
from .events import (
    StoreDeleteEvent,
    StoreProgressEvent,
    StoreSetEvent,
    StoreTransactionEndEvent,
    StoreTransactionStartEvent,
    StoreUpdateEvent,
)
from .utils import (
    DEFAULT_BUFFER_SIZE,
    is_listened,
    store_progress,
    transaction_lock,
)

logger = logging.getLogger(__name__)

__all__ = ["JoinedStore"]


# ---------------------------------------------------------------------------
# Machinery shared by the composite stores (joined, mounted, simple-auth)
# ---------------------------------------------------------------------------

_creation_lock = threading.Lock()


class _RolledBack(Exception):
    """Passed to the children's transaction contexts to make them roll back."""


def _can_roll_back(store: Any) -> bool:
    return getattr(store, "_rollback_transaction", None) is not None


class _CompositeTransaction(object):
    """The transaction of a composite store (one object per store).

    Nestable: only the outermost ``with`` block begins and ends it.  The
    outermost entry takes the composite's transaction lock (re-entrant, so
    other threads' transactions and writes wait) and then the transaction
    locks of every store below the composite, in one global order (see
    :meth:`_CompositeStoreMixin._descendants_in_lock_order`), so that
    composites sharing children cannot deadlock.  The transaction of a child
    is entered the first time the composite writes to that child (a child
    never written is not touched), and all are committed -- or rolled back,
    when the block raised -- at the end.

    The composite's own modification events are queued while the
    transaction is open on the owning thread and emitted after the
    :class:`~encore.storage.events.StoreTransactionEndEvent`: always after a
    commit; after a failure only if some child written could not roll back
    (its writes persisted).
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self._lock = transaction_lock(store)
        self._depth = 0
        self._owner: Optional[int] = None
        self._pending: List[Any] = []
        self._stack: Optional[contextlib.ExitStack] = None
        self._entered: Dict[int, Any] = {}

    @property
    def active(self) -> bool:
        """bool : Whether the transaction is open (on any thread)."""
        return self._depth > 0

    def active_here(self) -> bool:
        """Whether the transaction is open on the calling thread."""
        return self._depth > 0 and self._owner == threading.get_ident()

    def enter_child(self, child: Any) -> None:
        """Make sure the transaction of ``child`` is open (before writing it)."""
        key = id(child)
        if key in self._entered:
            return
        if callable(getattr(child, "transaction", None)):
            note = "{} transaction".format(type(self.store).__name__)
            self._stack.enter_context(child.transaction(note))
        self._entered[key] = child

    def __enter__(self) -> "_CompositeTransaction":
        self._lock.acquire()
        if self._depth > 0:
            self._depth += 1
            return self
        stack = contextlib.ExitStack()
        try:
            for store in self.store._descendants_in_lock_order():
                lock = transaction_lock(store)
                lock.acquire()
                stack.callback(lock.release)
        except BaseException:
            stack.close()
            self._lock.release()
            raise
        self._stack = stack
        self._entered = {}
        self._pending = []
        self._owner = threading.get_ident()
        self._depth = 1
        manager = self.store.event_manager
        if is_listened(manager, StoreTransactionStartEvent):
            manager.emit(StoreTransactionStartEvent(source=self.store))
        return self

    def _end(self, exc_type: Any) -> Tuple[List[Any], Optional[BaseException]]:
        """Leave one level; at the outermost, commit or roll back.

        Returns the events to emit (once every lock is released) and the
        error to raise, if committing failed.
        """
        if self._depth > 1:
            self._depth -= 1
            self._lock.release()
            return [], None
        stack, self._stack = self._stack, None
        pending, self._pending = self._pending, []
        entered, self._entered = list(self._entered.values()), {}
        state = "failed"
        error: Optional[BaseException] = None
        try:
            if exc_type is None:
                # Commits the children (latest first), then releases locks.
                stack.__exit__(None, None, None)
                state = "done"
            else:
                stack.__exit__(_RolledBack, _RolledBack("the transaction failed"), None)
        except BaseException as exc:  # noqa: B902 - handed back to the caller
            # A child failed to commit (or to roll back); ExitStack passed the
            # error to the remaining children, which rolled back.
            error = exc
        finally:
            self._depth = 0
            self._owner = None
            self._lock.release()
        events: List[Any] = []
        manager = self.store.event_manager
        if is_listened(manager, StoreTransactionEndEvent):
            events.append(StoreTransactionEndEvent(source=self.store, state=state))
        if state == "done" or not all(_can_roll_back(child) for child in entered):
            events.extend(pending)
        return events, error

    def __exit__(self, exc_type, exc_value, traceback) -> bool:
        events, error = self._end(exc_type)
        _emit_all(self.store, events)
        if error is not None:
            raise error
        return False


class _WriteScope(object):
    """What one write method of a composite holds while it runs.

    It holds the composite's transaction lock, so the composite's writes
    (each a read-then-write of its children) do not interleave.  The write
    then declares the children it will write with :meth:`will_write`: inside
    an open composite transaction their transactions join it; otherwise a
    write to one child relies on that child's own atomic write, and a write
    to several opens a composite transaction for the rest of the scope.
    Modification events are emitted when the scope ends, after the lock is
    released (queued by the transaction instead, when one is open).
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self.context = store._composite_transaction()
        self.started = False
        self.events: List[Any] = []
        self.outer: Optional["_WriteScope"] = None
        self.owner: Optional[int] = None

    def __enter__(self) -> "_WriteScope":
        self.lock = transaction_lock(self.store)
        self.lock.acquire()
        self.owner = threading.get_ident()
        namespace = self.store.__dict__
        self.outer = namespace.get("_write_scope")
        if self.outer is not None:
            self.events = self.outer.events
        namespace["_write_scope"] = self
        return self

    def will_write(self, *children: Any) -> None:
        """Declare the children the write is about to modify."""
        context = self.context
        if not context.active_here():
            if len(set(id(child) for child in children)) < 2:
                return
            context.__enter__()
            self.started = True
        for child in children:
            context.enter_child(child)

    def __exit__(self, exc_type, exc_value, traceback) -> bool:
        events: List[Any] = []
        error: Optional[BaseException] = None
        try:
            if self.started:
                events, error = self.context._end(exc_type)
        finally:
            self.store.__dict__["_write_scope"] = self.outer
            self.lock.release()
        if self.outer is None:
            if exc_type is None:
                events = events + self.events
            _emit_all(self.store, events)
        else:
            # The outermost scope emits them, once every lock is released.
            self.events.extend(events)
        if error is not None:
            raise error
        return False


def _emit_all(store: Any, events: List[Any]) -> None:
    if events:
        manager = store.event_manager
        for event in events:
            event._handled = False
            manager.emit(event)


class _ProgressStream(io.RawIOBase):
    """A read-only stream reporting the bytes read to a progress manager.

    Steps are reported at most once per ``step_size`` bytes (and once at the
    end), so a child reading in small pieces does not flood the listeners.
    """

    def __init__(self, stream: Any, progress: Any, step_size: int) -> None:
        super().__init__()
        self._stream = stream
        self._progress = progress
        self._step_size = max(1, min(step_size or DEFAULT_BUFFER_SIZE, 65536))
        self._total = 0
        self._reported = -1

    def readable(self) -> bool:
        return True

    def read(self, size: Optional[int] = -1) -> bytes:
        chunk = self._stream.read(size)
        if chunk:
            self._total += len(chunk)
            if self._total - max(self._reported, 0) >= self._step_size:
                self._reported = self._total
                self._progress.step(step=self._total)
        elif self._reported != self._total:
            self._reported = self._total
            self._progress.step(step=self._total)
        return chunk

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        chunk = self.read(len(view))
        view[:len(chunk)] = chunk
        return len(chunk)

    def readall(self) -> bytes:
        return self.read(-1)

    def close(self) -> None:
        # The caller owns the wrapped stream; closing the wrapper leaves it.
        super().close()


def _close(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # pragma: no cover - best effort cleanup
            logger.debug("Closing a copied stream failed", exc_info=True)


def _is_writable(store: Any) -> bool:
    return isinstance(store, AbstractStore) or callable(getattr(store, "set", None))


class _CompositeStoreMixin(object):
    """Transactions, connection, events and progress for composite stores.

    A composite lists its children in :meth:`_children` (those it may write
    in :meth:`_transactional_children`).  Each write method runs in a
    :class:`_WriteScope`; :meth:`transaction` returns the composite's
    :class:`_CompositeTransaction`, which spans the children written in it.
    """

    def _children(self) -> List[Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- connection ----------------------------------------------------------

    def _connect_children(self, credentials: Any = None) -> None:
        """Connect the children that are not connected yet, remembering them."""
        owned = self.__dict__.setdefault("_owned_connections", [])
        done = set(id(child) for child in owned)
        try:
            for child in self._children():
                if id(child) in done:
                    continue
                done.add(id(child))
                if not child.is_connected():
                    child.connect(credentials)
                    owned.append(child)
        except BaseException:
            self._disconnect_children()
            raise

    def _disconnect_children(self) -> None:
        """Disconnect the children this composite connected itself."""
        owned = self.__dict__.get("_owned_connections") or []
        self.__dict__["_owned_connections"] = []
        for child in reversed(owned):
            try:
                child.disconnect()
            except Exception:
                logger.warning("Disconnecting %r failed", child, exc_info=True)

    # -- transactions --------------------------------------------------------

    def _transactional_children(self) -> List[Any]:
        unique: Dict[int, Any] = {}
        for child in self._children():
            if callable(getattr(child, "transaction", None)):
                unique.setdefault(id(child), child)
        return [unique[key] for key in sorted(unique)]

    def transaction(self, notes: str) -> Any:
        """Return a context manager grouping writes into one transaction.

        The transaction spans the children: the first write to a child
        inside it opens a transaction on that child, and they all commit
        when the block ends normally, or roll back when it raises.  Commits
        of different children are not atomic together (there is no
        two-phase commit): should one child fail to commit, the children not
        yet committed roll back.

        Parameters
        ----------
        notes : str
            Describes the transaction (informative only).

        Returns
        -------
        context manager
            Nestable; holds the composite's modification events until the
            outermost block ends, and drops them when the block fails and
            every child written could roll back.

        Events
        ------
        StoreTransactionStartEvent
            When the outermost transaction begins.
        StoreTransactionEndEvent
            When it ends, before the modification events of its writes.
        """
        return self._composite_transaction()

    def _composite_transaction(self) -> _CompositeTransaction:
        context = self.__dict__.get("_composite_transaction_context")
        if context is None:
            with _creation_lock:
                context = self.__dict__.get("_composite_transaction_context")
                if context is None:
                    context = _CompositeTransaction(self)
                    self.__dict__["_composite_transaction_context"] = context
        return context

    def _writing(self) -> _WriteScope:
        """The scope a write method runs in (see :class:`_WriteScope`)."""
        return _WriteScope(self)

    def _emit_modification(self, event_class: type, key: str, metadata: Optional[Dict[str, Any]]) -> None:
        # Queue the event in the open transaction or write scope of this
        # thread; they emit it at the right time.
        event = event_class(source=self, key=key, metadata=metadata)
        context = self.__dict__.get("_composite_transaction_context")
        if context is not None and context.active_here():
            context._pending.append(event)
            return
        scope = self.__dict__.get("_write_scope")
        if scope is not None and scope.owner == threading.get_ident():
            scope.events.append(event)
            return
        self.event_manager.emit(event)

    def _descendants_in_lock_order(self) -> List[Any]:
        """Every transactional store below this one, in the global order in
        which composite transactions take their locks.

        Stores are ordered by decreasing *height* (0 for a plain store, one
        more than its highest child for a composite), then by ``id``.  A
        composite holds its own lock before taking these, and they all rank
        below it, so every thread takes locks in the same global order and
        composites sharing children -- even nested ones -- cannot deadlock.
        """
        heights: Dict[int, int] = {}
        stores: Dict[int, Any] = {}

        def height(store: Any, path: frozenset) -> int:
            key = id(store)
            if key in heights:
                return heights[key]
            children = []
            if isinstance(store, _CompositeStoreMixin) and key not in path:
                children = store._transactional_children()
            value = 1 + max((height(child, path | {key}) for child in children), default=-1)
            heights[key] = value
            stores[key] = store
            return value

        for child in self._transactional_children():
            height(child, frozenset([id(self)]))
        stores.pop(id(self), None)
        return sorted(stores.values(), key=lambda store: (-heights[id(store)], id(store)))

    # -- events and progress -------------------------------------------------

    def _listened(self, *event_classes: type) -> bool:
        manager = self.event_manager
        return any(is_listened(manager, cls) for cls in event_classes)

    def _progress_value(self, key: str, value: Any, buffer_size: int, message: str):
        """Return ``(value, progress, opened)`` for a write of ``value``.

        ``message`` is a template formatted with the key (only when used).

        When nobody listens to progress events, ``value`` is returned as it
        is with a do-nothing progress manager.  Otherwise the data stream is
        wrapped so that the bytes the child reads are reported with this
        store as the source; ``opened`` is a stream to close afterwards
        (the one opened from a :class:`Value`), or ``None``.
        """
        progress = None
        if is_listened(self.event_manager, StoreProgressEvent):
            if isinstance(value, tuple):
                data, metadata = value
                opened = None
                size = -1
            else:
                data = opened = value.data
                metadata = value.metadata
                size = getattr(value, "size", None)
                size = -1 if size is None else size
            progress = store_progress(self, key, metadata, message.format(key), size)
            value = (_ProgressStream(data, progress, buffer_size), metadata)
            return value, progress, opened
        return value, None, None

    def _progress_data(self, key: str, data: Any, buffer_size: int, message: str):
        """Return ``(data, progress)``: ``data`` wrapped to report progress
        when anyone listens, else unchanged with ``progress`` ``None``."""
        if is_listened(self.event_manager, StoreProgressEvent):
            progress = store_progress(self, key, None, message.format(key), -1)
            return _ProgressStream(data, progress, buffer_size), progress
        return data, None


@contextlib.contextmanager
def _maybe_progress(progress: Any) -> Iterator[None]:
    if progress is None:
        yield
    else:
        with progress:
            yield


def _value_metadata(value: Any) -> Dict[str, Any]:
    if isinstance(value, tuple):
        return value[1]
    return value.metadata


# ---------------------------------------------------------------------------
# JoinedStore
# ---------------------------------------------------------------------------

class JoinedStore(_CompositeStoreMixin, AbstractAuthorizingStore):
    """A store whose keys are the union of the keys of several stores.

    When several stores hold a key, the first of them in :attr:`stores`
    provides it: its copy *shadows* the others for reads, queries and globs.
    Writes go into the first store (see the module documentation for the
    routing of each method): a write to a key held only by a later store
    first copies it into ``stores[0]`` (copy-on-write, streamed), and
    :meth:`delete` removes the key from every store holding it.

    Parameters
    ----------
    stores : sequence of AbstractReadOnlyStore
        The stores joined, highest priority first.  ``stores[0]`` must be
        writable for the joined store to be; later stores may be read-only.
    event_manager : BaseEventManager, optional
        Where the joined store emits its events (default: the package-wide
        manager).  The children keep emitting their own events, with
        themselves as the source.

    Attributes
    ----------
    stores : list
        The joined stores, highest priority first.
    """

    def __init__(self, stores: Iterable[Any], event_manager: Any = None) -> None:
        super().__init__(event_manager=event_manager)
        self.stores = list(stores)

    def _children(self) -> List[Any]:
        return list(self.stores)

    def _writable_first(self) -> Any:
        stores = self.stores
        if not stores:
            raise StoreError("a JoinedStore without stores cannot be written")
        first = stores[0]
        if not _is_writable(first):
            raise StoreError("the first store of the JoinedStore ({!r}) is read-only".format(first))
        return first

    def _reader(self, key: str) -> Any:
        """The store to read ``key`` from: the first store holding it.

        Every store but the last is probed with ``exists`` (a miss there is
        much cheaper than a failing ``get``); the last is returned without a
        probe, so that its own read raises ``KeyError`` when it lacks the
        key too.
        """
        stores = self.stores
        for store in stores[:-1]:
            if store.exists(key):
                return store
        if stores:
            return stores[-1]
        raise KeyError(key)

    def _holder_index(self, key: str) -> Optional[int]:
        for index, store in enumerate(self.stores):
            if store.exists(key):
                return index
        return None

    # -- connection ----------------------------------------------------------

    def connect(self, credentials: Any = None) -> None:
        """Connect the joined store and every child not yet connected.

        Parameters
        ----------
        credentials : object, optional
            Passed to the ``connect`` of each child connected here.

        Raises
        ------
        Exception
            Whatever a child's ``connect`` raises; the children connected
            before it are disconnected again.
        """
        self._connect_children(credentials)
        self._connected = True

    def disconnect(self) -> None:
        """Disconnect the joined store and the children it connected.

        Children that were already connected when :meth:`connect` was called
        are left connected (they may be shared).  :attr:`stores` is kept.
        """
        self._disconnect_children()
        self._connected = False

    def info(self) -> Dict[str, Any]:
        """Describe the joined store.

        Returns
        -------
        dict
            ``'readonly'`` (whether ``stores[0]`` is read-only),
            ``'authorizing'`` (whether any child is), ``'type'`` and
            ``'stores'`` (the number of children).
        """
        stores = self.stores
        return {
            "readonly": not stores or not _is_writable(stores[0]),
            "authorizing": any(isinstance(store, AbstractAuthorizingStore) for store in stores),
            "type": type(self).__name__,
            "stores": len(stores),
        }

    # -- reads ---------------------------------------------------------------

    def get(self, key: str) -> Value:
        """Return the value of a key from the first store holding it.

        Parameters
        ----------
        key : str
            The key.

        Returns
        -------
        Value
            The value given by that store (its data is not read).  The
            stores before it are probed with ``exists``.

        Raises
        ------
        KeyError
            If no store holds the key.
        """
        # The loop of _reader, inlined on this hot path.
        stores = self.stores
        for store in stores[:-1]:
            if store.exists(key):
                return store.get(key)
        if stores:
            return stores[-1].get(key)
        raise KeyError(key)

    def get_data(self, key: str) -> Any:
        """Return the data of a key, from the first store holding it.

        Parameters
        ----------
        key : str
            The key.

        Returns
        -------
        file-like
            The child's stream; the caller closes it.

        Raises
        ------
        KeyError
            If no store holds the key.
        """
        return self._reader(key).get_data(key)

    def get_data_range(self, key: str, start: Optional[int] = None, end: Optional[int] = None) -> Any:
        """Return ``data[start:end]`` of a key, from the first store holding it.

        Parameters
        ----------
        key : str
            The key.
        start, end : int, optional
            Slice-style offsets (``end`` exclusive).

        Returns
        -------
        file-like
            A stream of the range; the caller closes it.

        Raises
        ------
        KeyError
            If no store holds the key.
        """
        return self._reader(key).get_data_range(key, start, end)

    def get_metadata(self, key: str, select: Optional[Iterable[str]] = None) -> Dict[str, Any]:
        """Return the metadata of a key, from the first store holding it.

        Parameters
        ----------
        key : str
            The key.
        select : iterable of str, optional
            The names wanted; ``None`` for all.

        Returns
        -------
        dict
            An independent copy.

        Raises
        ------
        KeyError
            If no store holds the key.
        """
        if select is not None:
            select = list(select)
        return self._reader(key).get_metadata(key, select)

    def exists(self, key: str) -> bool:
        """Whether any of the stores holds a key.

        Parameters
        ----------
        key : str
            The key.

        Returns
        -------
        bool
            ``True`` if some store holds it.
        """
        return any(store.exists(key) for store in self.stores)

    def query(self, select: Optional[Iterable[str]] = None, **kwargs: Any) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """Find the keys whose metadata match, each from the store providing it.

        A key is reported once, with the metadata of the first store holding
        it; a shadowed copy in a later store is never reported, even when
        the copy that shadows it does not match.

        Parameters
        ----------
        select : iterable of str, optional
            The metadata names to return (``None``: all).
        **kwargs
            Metadata names and the values they must equal.

        Returns
        -------
        iterator of (str, dict)
            The matching keys and their (selected) metadata, store by store.
        """
        if select is not None:
            select = list(select)
        return self._joined(lambda store: store.query(select, **kwargs), bool(kwargs), True)

    def query_keys(self, **kwargs: Any) -> Iterator[str]:
        """Find the keys whose metadata match (see :meth:`query`).

        Parameters
        ----------
        **kwargs
            Metadata names and the values they must equal; with none, every
            key of every store, once.

        Returns
        -------
        iterator of str
            The matching keys.
        """
        return self._joined(lambda store: store.query_keys(**kwargs), bool(kwargs), False)

    def glob(self, pattern: str) -> Iterator[str]:
        """Find the keys matching a shell-style pattern, each once.

        Parameters
        ----------
        pattern : str
            A pattern for :func:`fnmatch.fnmatchcase`.

        Returns
        -------
        iterator of str
            The matching keys, store by store.
        """
        # A copy shadowing a matching key has the same key, so it matched
        # too: remembering the keys already yielded is enough.
        return self._joined(lambda store: store.glob(pattern), False, False)

    def _joined(self, listing: Callable[[Any], Iterable[Any]], filtered: bool, pairs: bool) -> Iterator[Any]:
        seen = set()
        earlier: List[Any] = []
        for store in list(self.stores):
            for item in listing(store):
                key = item[0] if pairs else item
                if key in seen:
                    continue
                # When every key of the earlier stores was listed (no
                # filter), ``seen`` knows them all; otherwise ask them.
                if filtered and any(other.exists(key) for other in earlier):
                    continue
                seen.add(key)
                yield item
            earlier.append(store)

    # -- writes --------------------------------------------------------------

    def set(self, key: str, value: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Set the data and metadata of a key in the first store.

        Copies of the key in later stores stay, shadowed.

        Parameters
        ----------
        key : str
            The key.
        value : Value or (file-like, dict) tuple
            The new data and metadata; the data is streamed.
        buffer_size : int, optional
            The number of bytes read at a time.

        Raises
        ------
        StoreError
            If the first store is read-only or there is no store.

        Events
        ------
        StoreSetEvent or StoreUpdateEvent
            One, with this store as the source (after the transaction).
        StoreProgressStartEvent, StoreProgressStepEvent, StoreProgressEndEvent
            While the data is copied, when anyone listens.
        """
        first = self._writable_first()
        notify = self._listened(StoreSetEvent, StoreUpdateEvent)
        with self._writing() as scope:
            existed = notify and self.exists(key)
            value, progress, opened = self._progress_value(key, value, buffer_size, "Setting {}")
            scope.will_write(first)
            try:
                with _maybe_progress(progress):
                    first.set(key, value, buffer_size)
            finally:
                if opened is not None:
                    _close(opened)
            if notify:
                self._emit_write(key, existed, _value_metadata(value))

    def set_data(self, key: str, data: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Replace the data of a key, in the first store.

        If the key is held only by a later store, the first store receives
        the new data with that store's metadata (copy-on-write).  A new key
        is created in the first store with empty metadata.

        Parameters
        ----------
        key : str
            The key.
        data : file-like
            The new data, streamed.
        buffer_size : int, optional
            The number of bytes read at a time.

        Raises
        ------
        StoreError
            If the first store is read-only or there is no store.

        Events
        ------
        StoreSetEvent or StoreUpdateEvent
            One, with this store as the source.
        StoreProgressStartEvent, StoreProgressStepEvent, StoreProgressEndEvent
            While the data is copied, when anyone listens.
        """
        first = self._writable_first()
        notify = self._listened(StoreSetEvent, StoreUpdateEvent)
        with self._writing() as scope:
            holder = self._holder_index(key)
            data, progress = self._progress_data(key, data, buffer_size, "Setting data of {}")
            scope.will_write(first)
            metadata = None
            with _maybe_progress(progress):
                if holder is None or holder == 0:
                    first.set_data(key, data, buffer_size)
                else:
                    metadata = self.stores[holder].get_metadata(key)
                    first.set(key, (data, metadata), buffer_size)
            if notify:
                if metadata is None:
                    metadata = first.get_metadata(key)
                self._emit_write(key, holder is not None, metadata)

    def set_metadata(self, key: str, metadata: Dict[str, Any]) -> None:
        """Replace the metadata of a key, in the first store.

        If the key is held only by a later store, its data is streamed into
        the first store with the new metadata (copy-on-write).  A new key is
        created in the first store with empty data.

        Parameters
        ----------
        key : str
            The key.
        metadata : dict
            The new metadata.

        Raises
        ------
        StoreError
            If the first store is read-only or there is no store.

        Events
        ------
        StoreSetEvent or StoreUpdateEvent
            One, with this store as the source.
        """
        first = self._writable_first()
        notify = self._listened(StoreSetEvent, StoreUpdateEvent)
        with self._writing() as scope:
            holder = self._holder_index(key)
            scope.will_write(first)
            if holder is None or holder == 0:
                first.set_metadata(key, metadata)
            else:
                self._copy_up(key, holder, metadata)
            if notify:
                self._emit_write(key, holder is not None, metadata)

    def update_metadata(self, key: str, metadata: Dict[str, Any]) -> None:
        """Merge values into the metadata of a key, in the first store.

        If the key is held only by a later store, its data and merged
        metadata are streamed into the first store (copy-on-write).

        Parameters
        ----------
        key : str
            The key.
        metadata : dict
            The names and values to merge.

        Raises
        ------
        KeyError
            If no store holds the key.
        StoreError
            If the first store is read-only or there is no store.

        Events
        ------
        StoreUpdateEvent
            One, with this store as the source and the merged metadata.
        """
        first = self._writable_first()
        notify = self._listened(StoreUpdateEvent)
        with self._writing() as scope:
            holder = self._holder_index(key)
            if holder is None:
                raise KeyError(key)
            scope.will_write(first)
            if holder == 0:
                first.update_metadata(key, metadata)
                merged = first.get_metadata(key) if notify else None
            else:
                merged = self.stores[holder].get_metadata(key)
                merged.update(metadata)
                self._copy_up(key, holder, merged)
            if notify:
                self._emit_write(key, True, merged)

    def _copy_up(self, key: str, holder: int, metadata: Dict[str, Any]) -> None:
        """Stream the data of ``key`` from ``stores[holder]`` into
        ``stores[0]`` with ``metadata``."""
        stream = self.stores[holder].get_data(key)
        try:
            self.stores[0].set(key, (stream, metadata))
        finally:
            _close(stream)

    def delete(self, key: str) -> None:
        """Delete a key from every store holding it.

        Deleting only the first copy would let a shadowed copy reappear, so
        every copy goes, in one transaction.

        Parameters
        ----------
        key : str
            The key.

        Raises
        ------
        KeyError
            If no store holds the key.
        StoreError
            If a store holding the key is read-only; nothing is deleted.

        Events
        ------
        StoreDeleteEvent
            One, with this store as the source and the metadata the key
            showed.
        """
        notify = self._listened(StoreDeleteEvent)
        with self._writing() as scope:
            holders = [store for store in self.stores if store.exists(key)]
            if not holders:
                raise KeyError(key)
            for store in holders:
                if not callable(getattr(store, "delete", None)):
                    raise StoreError(
                        "cannot delete {!r}: the read-only store {!r} holds it".format(key, store))
            metadata = holders[0].get_metadata(key) if notify else None
            scope.will_write(*holders)
            for store in holders:
                store.delete(key)
            if notify:
                self._emit_delete(key, metadata)

    # -- permissions ---------------------------------------------------------

    @property
    def user_tag(self) -> str:
        """str : The user tag of the first authorizing store (``'user'`` if none)."""
        for store in self.stores:
            if isinstance(store, AbstractAuthorizingStore) or hasattr(store, "user_tag"):
                tag = store.user_tag
                return tag() if callable(tag) else tag
        return "user"

    def _permission_holder(self, key: str) -> Any:
        for store in self.stores:
            if store.exists(key):
                return store
        raise KeyError(key)

    def get_permissions(self, key: str) -> Dict[str, Any]:
        """Return the permissions of a key, from the first store holding it.

        Parameters
        ----------
        key : str
            The key.

        Returns
        -------
        dict of str to set of str
            The permissions.

        Raises
        ------
        KeyError
            If no store holds the key.
        AuthorizationError
            If that store keeps no permissions or refuses to show them.
        """
        store = self._permission_holder(key)
        method = getattr(store, "get_permissions", None)
        if method is not None:
            return method(key)
        return store.get(key).permissions

    def set_permissions(self, key: str, permissions: Dict[str, Any]) -> None:
        """Replace the permissions of a key in the first store holding it.

        Parameters
        ----------
        key : str
            The key.
        permissions : dict of str to set of str
            The new permissions.

        Raises
        ------
        KeyError
            If no store holds the key.
        AuthorizationError
            If that store keeps no permissions or refuses the change.
        """
        self._permission_method(key, "set_permissions")(key, permissions)

    def update_permissions(self, key: str, permissions: Dict[str, Any]) -> None:
        """Merge permissions into those of a key, in the first store holding it.

        Parameters
        ----------
        key : str
            The key.
        permissions : dict of str to set of str
            The permissions to grant.

        Raises
        ------
        KeyError
            If no store holds the key.
        AuthorizationError
            If that store keeps no permissions or refuses the change.
        """
        self._permission_method(key, "update_permissions")(key, permissions)

    def _permission_method(self, key: str, name: str) -> Callable[..., Any]:
        store = self._permission_holder(key)
        method = getattr(store, name, None)
        if method is None:
            raise AuthorizationError("{!r} keeps no permissions".format(store))
        return method

"""The base class of the composite stores.

:class:`~encore.storage.joined_store.JoinedStore`,
:class:`~encore.storage.mounted_store.MountedStore` and
:class:`~encore.storage.simple_auth_store.SimpleAuthStore` wrap other stores.
This private module holds what they share, in :class:`_CompositeStore`:
connection of the children, transactions that span the children a
composite writes to, the composite's write scope and lock order, progress
reporting over streamed copies, and the public reads and writes, routed by
a few hooks each composite defines (where a key is read from, where a write
goes, what is checked before a write).
"""
from __future__ import annotations

import contextlib
import io
import logging
import threading
from typing import Any, Callable, Dict, Iterable, Iterator, List, Literal, Optional, Tuple

from .abstract_store import AbstractStore, StoreError, Value, value_parts
from .events import (
    StoreDeleteEvent,
    StoreSetEvent,
    StoreTransactionEndEvent,
    StoreTransactionStartEvent,
    StoreUpdateEvent,
)
from .utils import (
    DEFAULT_BUFFER_SIZE,
    EventHold,
    emit_events,
    is_listened,
    progress_is_listened,
    store_progress,
    transaction_lock,
)

logger = logging.getLogger(__name__)


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
    :meth:`_CompositeStore._descendants_in_lock_order`), so that
    composites sharing children cannot deadlock.  The transaction of a child
    is entered the first time the composite writes to that child (a child
    never written is not touched), and all are committed -- or rolled back,
    when the block raised -- at the end.

    The composite's own modification events are held (an
    :class:`~encore.storage.utils.EventHold`) while the transaction is open
    on the owning thread and emitted after the
    :class:`~encore.storage.events.StoreTransactionEndEvent`: always after a
    commit; after a failure only if some child written could not roll back
    (its writes persisted).
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self._lock = transaction_lock(store)
        self._depth = 0
        self._owner: Optional[int] = None
        self._hold: Optional[EventHold] = None
        self._stack: Optional[contextlib.ExitStack] = None
        self._entered: Dict[int, Any] = {}

    def active_here(self) -> bool:
        """Whether the transaction is open on the calling thread."""
        return self._depth > 0 and self._owner == threading.get_ident()

    def enter_child(self, child: Any) -> None:
        """Make sure the transaction of ``child`` is open (before writing it)."""
        key = id(child)
        if key in self._entered:
            return
        if callable(getattr(child, "transaction", None)) and self._stack is not None:
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
        self._hold = EventHold(self.store).open()
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
        if stack is None:  # pragma: no cover - depth 1 always has a stack
            stack = contextlib.ExitStack()
        hold, self._hold = self._hold, None
        pending = hold.close() if hold is not None else []
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

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> Literal[False]:
        events, error = self._end(exc_type)
        emit_events(self.store, events)
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
    The modification events of a write that emits any (``hold_events``) are
    held (an :class:`~encore.storage.utils.EventHold` of the outermost scope)
    and emitted when the scope ends, after the lock is released -- or held by
    the transaction instead, when one is open.
    """

    def __init__(self, store: Any, hold_events: bool = True) -> None:
        self.store = store
        self.hold_events = hold_events
        self.context = store._composite_transaction()
        self.started = False
        self.hold: Optional[EventHold] = None
        self.outer: Optional["_WriteScope"] = None
        self.owner: Optional[int] = None

    def __enter__(self) -> "_WriteScope":
        self.lock = transaction_lock(self.store)
        self.lock.acquire()
        self.owner = threading.get_ident()
        namespace = self.store.__dict__
        self.outer = outer = namespace.get("_active_write_scope")
        if self.hold_events and not self.context.active_here():
            while outer is not None and outer.hold is None:
                outer = outer.outer
            if outer is None:  # no enclosing scope holds the events yet
                self.hold = EventHold(self.store).open()
        namespace["_active_write_scope"] = self
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

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> Literal[False]:
        events: List[Any] = []
        error: Optional[BaseException] = None
        try:
            if self.started:
                events, error = self.context._end(exc_type)
        finally:
            held = self.hold.close() if self.hold is not None else []
            self.store.__dict__["_active_write_scope"] = self.outer
            self.lock.release()
        if exc_type is None:
            events = events + held
        if not events:
            pass
        elif self.outer is None:
            emit_events(self.store, events)
        else:
            # The outermost scope emits them, once every lock is released.
            outer = self.outer
            while outer.hold is None and outer.outer is not None:
                outer = outer.outer
            if outer.hold is not None:
                outer.hold.events.extend(events)
            else:
                emit_events(self.store, events)
        if error is not None:
            raise error
        return False


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


class _CompositeStore(AbstractStore):
    """The base class of the composite stores: connection, transactions,
    events, progress, and the reads and writes routed by hooks.

    A composite lists its children in :meth:`_children` (those it may write
    in :meth:`_transactional_children`) and routes requests with a few
    hooks, each the one place a composite says where a key goes and what is
    checked first:

    * :meth:`_source` -- the child (and its key) a key is read from, after
      any check of the read (used by ``get_data``, ``get_data_range`` and
      ``get_metadata``; a composite may inline it in ``get``, its hot path);
    * :meth:`_check_write` -- what is checked before a write of a key
      (nothing by default; :class:`~encore.storage.simple_auth_store.SimpleAuthStore`
      checks the user's permissions);
    * :meth:`_write_target` -- the child (and its key) receiving writes of a
      key, raising for a refused key;
    * :meth:`_lower_copy` -- the copy of a key that shows while the write
      target lacks it, which a partial write copies up first
      (copy-on-write);
    * :meth:`_copies` -- every copy a delete must remove.

    The public writes (``set``, ``set_data``, ``set_metadata``,
    ``update_metadata``, ``delete``) are implemented here on these hooks;
    each runs in a :class:`_WriteScope` and emits one modification event
    with the composite as the source.  :meth:`transaction` returns the
    composite's :class:`_CompositeTransaction`, which spans the children
    written in it.  Existence, queries and ``glob`` differ too much between
    composites to share; each composite writes its own.
    """

    def _children(self) -> List[Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- description ---------------------------------------------------------

    def info(self) -> Dict[str, Any]:
        """Describe the composite store.

        Returns
        -------
        dict
            ``'readonly'`` (whether the child named by :meth:`_info_writer`
            is missing or read-only), ``'authorizing'`` (``False``),
            ``'type'`` (the class name), then what :meth:`_info_details`
            adds or overrides.
        """
        writer = self._info_writer()
        result: Dict[str, Any] = {
            "readonly": writer is None or not _is_writable(writer),
            "authorizing": False,
            "type": type(self).__name__,
        }
        result.update(self._info_details())
        return result

    def _info_writer(self) -> Any:  # pragma: no cover - overridden
        """The child whose writability :meth:`info` reports (None: read-only)."""
        raise NotImplementedError

    def _info_details(self) -> Dict[str, Any]:
        """The entries of :meth:`info` that belong to this composite."""
        return {}

    # -- connection ----------------------------------------------------------

    def connect(self, credentials: Any = None) -> None:
        """Connect the store and every child not yet connected.

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
        """Disconnect the store and the children it connected.

        Children that were already connected when :meth:`connect` was called
        are left connected (they may be shared).  The children stay
        referenced, so the store can connect again.
        """
        self._disconnect_children()
        self._connected = False

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

        Returns
        -------
        context manager
            Nestable; holds the composite's modification events until the
            outermost block ends, and drops them when the block fails and
            every child written could roll back.
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

    def _write_scope(self, hold_events: bool = True) -> _WriteScope:
        """The scope a write method runs in (see :class:`_WriteScope`);
        ``hold_events`` is false for a write that emits no event."""
        return _WriteScope(self, hold_events)

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
            if isinstance(store, _CompositeStore) and key not in path:
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

    @contextlib.contextmanager
    def _data_to_write(
        self,
        key: str,
        data: Any,
        buffer_size: int,
        message: str = "Setting data of {}",
        metadata: Optional[Dict[str, Any]] = None,
        size: int = -1,
    ) -> Iterator[Any]:
        """Yield ``data``, wrapped to report the bytes a child reads from it
        as progress events with this store as the source -- only when anyone
        listens to them.  ``message`` is formatted with the key."""
        if not progress_is_listened(self.event_manager):
            yield data
            return
        with store_progress(self, key, metadata, message.format(key), size, data) as progress:
            yield _ProgressStream(data, progress, buffer_size)

    @contextlib.contextmanager
    def _value_to_write(self, key: str, value: Any, buffer_size: int) -> Iterator[Any]:
        """Yield ``value`` (a ``Value`` or ``(data, metadata)`` tuple), as a
        tuple whose data reports progress when anyone listens (see
        :meth:`_data_to_write`); a stream opened from a ``Value`` is closed
        at the end."""
        if not progress_is_listened(self.event_manager):
            yield value
            return
        data, metadata, size, opened = value_parts(value)
        try:
            with self._data_to_write(key, data, buffer_size, "Setting {}", metadata,
                                     -1 if size is None else size) as data:
                yield data, metadata
        finally:
            if opened:
                _close(data)

    # -- routing hooks -------------------------------------------------------

    def _source(self, key: str) -> Tuple[Any, str]:  # pragma: no cover - overridden
        """Return ``(child, child_key)`` to read ``key`` from.

        Raises ``KeyError`` when no child can hold the key, and whatever
        error refuses the read.
        """
        raise NotImplementedError

    def _check_write(self, key: str, permission: str, must_exist: bool = False) -> None:
        """Check a write of ``key`` before anything is read or written.

        ``permission`` is ``'set'`` or ``'delete'``; ``must_exist`` is true
        for writes of an existing key (``update_metadata``, ``delete``).
        The default checks nothing.
        """

    def _write_target(self, key: str) -> Tuple[Any, str]:  # pragma: no cover - overridden
        """Return ``(child, child_key)`` receiving the writes of ``key``.

        Raises whatever error refuses the write (``KeyError`` for a key the
        composite cannot write, ``StoreError`` for a read-only target...).
        """
        raise NotImplementedError

    def _lower_copy(self, key: str) -> Optional[Tuple[Any, str]]:
        """Return ``(store, store_key)`` of the copy of ``key`` that shows
        while the write target lacks it, or ``None`` if there is none."""
        return None

    def _copies(self, key: str) -> List[Tuple[Any, str]]:  # pragma: no cover - overridden
        """Return every ``(store, store_key)`` a delete of ``key`` removes,
        the copy that shows first (raising for a refused key)."""
        raise NotImplementedError

    def _locate_for_write(self, key: str, target: Any, target_key: str) -> Tuple[bool, Optional[Tuple[Any, str]]]:
        """Return whether the target holds the key and, if not, its lower copy."""
        if target.exists(target_key):
            return True, None
        return False, self._lower_copy(key)

    # -- reads ---------------------------------------------------------------

    def get(self, key: str) -> Value:
        """Return the value of a key, from the child the composite reads
        it from (the child's value; its data is not read)."""
        store, store_key = self._source(key)
        return store.get(store_key)

    def get_data(self, key: str) -> Any:
        """Return the data of a key: the stream of the child holding it."""
        store, store_key = self._source(key)
        return store.get_data(store_key)

    def get_data_range(self, key: str, start: Optional[int] = None, end: Optional[int] = None) -> Any:
        """Return ``data[start:end]`` of a key, as the child holding it
        gives it."""
        store, store_key = self._source(key)
        return store.get_data_range(store_key, start, end)

    def get_metadata(self, key: str, select: Optional[Iterable[str]] = None) -> Dict[str, Any]:
        """Return the metadata of a key, from the child holding it."""
        if select is not None:
            select = list(select)
        store, store_key = self._source(key)
        return store.get_metadata(store_key, select)

    # -- writes --------------------------------------------------------------

    def set(self, key: str, value: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Set the data and metadata of a key in the write target (see the
        composite's routing).

        Events
        ------
        StoreSetEvent or StoreUpdateEvent
            One, with the composite as the source.
        """
        self._check_write(key, "set")
        self._set(key, value, buffer_size)

    def set_data(self, key: str, data: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Replace the data of a key in the write target; a key only a lower
        copy holds gets that copy's metadata with the new data
        (copy-on-write).

        Events
        ------
        StoreSetEvent or StoreUpdateEvent
            One, with the composite as the source.
        """
        self._check_write(key, "set")
        self._set_data(key, data, buffer_size)

    def set_metadata(self, key: str, metadata: Dict[str, Any]) -> None:
        """Replace the metadata of a key in the write target; a key only a
        lower copy holds has that copy's data streamed up with the new
        metadata (copy-on-write).

        Events
        ------
        StoreSetEvent or StoreUpdateEvent
            One, with the composite as the source.
        """
        self._check_write(key, "set")
        self._set_metadata(key, metadata)

    def update_metadata(self, key: str, metadata: Dict[str, Any]) -> None:
        """Merge values into the metadata of a key in the write target; a
        key only a lower copy holds is copied up (data streamed) with the
        merged metadata.

        Events
        ------
        StoreUpdateEvent
            One, with the composite as the source and the merged metadata.
        """
        self._check_write(key, "set", must_exist=True)
        self._update_metadata(key, metadata)

    def delete(self, key: str) -> None:
        """Delete every copy of a key, in one transaction, so that no lower
        copy shows through afterwards.

        Raises
        ------
        KeyError
            If no child holds the key.
        StoreError
            If a child holding it is read-only; nothing is deleted then.

        Events
        ------
        StoreDeleteEvent
            One, with the composite as the source and the metadata the key
            showed.
        """
        self._check_write(key, "delete", must_exist=True)
        self._delete(key)

    def _set(self, key: str, value: Any, buffer_size: int) -> None:
        target, target_key = self._write_target(key)
        notify = is_listened(self.event_manager, StoreSetEvent, StoreUpdateEvent)
        with self._write_scope(notify) as scope:
            existed = False
            if notify:
                in_target, lower = self._locate_for_write(key, target, target_key)
                existed = in_target or lower is not None
            scope.will_write(target)
            with self._value_to_write(key, value, buffer_size) as value:
                target.set(target_key, value, buffer_size)
            if notify:
                metadata = value[1] if isinstance(value, tuple) else value.metadata
                self._emit_write(key, existed, metadata)

    def _set_data(self, key: str, data: Any, buffer_size: int) -> None:
        target, target_key = self._write_target(key)
        notify = is_listened(self.event_manager, StoreSetEvent, StoreUpdateEvent)
        with self._write_scope(notify) as scope:
            in_target, lower = self._locate_for_write(key, target, target_key)
            scope.will_write(target)
            metadata = None
            with self._data_to_write(key, data, buffer_size) as data:
                if lower is None:
                    target.set_data(target_key, data, buffer_size)
                else:
                    # Copy-on-write: the new data with the lower copy's metadata.
                    store, store_key = lower
                    metadata = store.get_metadata(store_key)
                    target.set(target_key, (data, metadata), buffer_size)
            if notify:
                if metadata is None:
                    metadata = target.get_metadata(target_key)
                self._emit_write(key, in_target or lower is not None, metadata)

    def _set_metadata(self, key: str, metadata: Dict[str, Any]) -> None:
        target, target_key = self._write_target(key)
        notify = is_listened(self.event_manager, StoreSetEvent, StoreUpdateEvent)
        with self._write_scope(notify) as scope:
            in_target, lower = self._locate_for_write(key, target, target_key)
            scope.will_write(target)
            if lower is None:
                target.set_metadata(target_key, metadata)
            else:
                _copy_data(lower, target, target_key, metadata)
            if notify:
                self._emit_write(key, in_target or lower is not None, metadata)

    def _update_metadata(self, key: str, metadata: Dict[str, Any]) -> None:
        target, target_key = self._write_target(key)
        notify = is_listened(self.event_manager, StoreUpdateEvent)
        with self._write_scope(notify) as scope:
            in_target, lower = self._locate_for_write(key, target, target_key)
            if not in_target and lower is None:
                raise KeyError(key)
            scope.will_write(target)
            if lower is None:  # the target holds the key
                target.update_metadata(target_key, metadata)
                merged = target.get_metadata(target_key) if notify else None
            else:
                store, store_key = lower
                merged = store.get_metadata(store_key)
                merged.update(metadata)
                _copy_data(lower, target, target_key, merged)
            if notify:
                self._emit_write(key, True, merged)

    def _delete(self, key: str) -> None:
        notify = is_listened(self.event_manager, StoreDeleteEvent)
        with self._write_scope(notify) as scope:
            copies = self._copies(key)
            if not copies:
                raise KeyError(key)
            for store, _ in copies:
                if not callable(getattr(store, "delete", None)):
                    raise StoreError(
                        "cannot delete {!r}: the read-only store {!r} holds it".format(key, store))
            metadata = None
            if notify:
                store, store_key = copies[0]
                metadata = store.get_metadata(store_key)
            scope.will_write(*(store for store, _ in copies))
            for store, store_key in copies:
                store.delete(store_key)
            if notify:
                self._emit_delete(key, metadata)


def _copy_data(source: Tuple[Any, str], target: Any, target_key: str, metadata: Dict[str, Any]) -> None:
    """Stream the data of ``source`` (a ``(store, key)`` pair) into
    ``target_key`` of ``target``, with ``metadata``."""
    store, key = source
    stream = store.get_data(key)
    try:
        target.set(target_key, (stream, metadata))
    finally:
        _close(stream)


def _unshadowed(listings: Iterable[Tuple[Iterable[Any], Optional[Callable[[str], bool]]]],
                pairs: bool) -> Iterator[Any]:
    """Chain query results, reporting each key once and no shadowed copy.

    ``listings`` yields ``(items, hidden)`` pairs, highest priority first:
    ``items`` are keys, or ``(key, metadata)`` pairs when ``pairs``;
    ``hidden(key)`` tells whether a higher copy shadows the key (``None``:
    every higher copy was listed, so remembering the keys reported is
    enough -- true when nothing filters the listings by metadata).
    """
    seen = set()
    for items, hidden in listings:
        for item in items:
            key = item[0] if pairs else item
            if key in seen or (hidden is not None and hidden(key)):
                continue
            seen.add(key)
            yield item

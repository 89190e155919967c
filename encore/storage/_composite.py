"""Machinery shared by the composite stores.

:class:`~encore.storage.joined_store.JoinedStore`,
:class:`~encore.storage.mounted_store.MountedStore` and
:class:`~encore.storage.simple_auth_store.SimpleAuthStore` wrap other stores.
This private module holds what they share: transactions that span the
children a composite writes to, the composite's write scope and lock order,
progress reporting over streamed copies, and small helpers.
"""
from __future__ import annotations

import contextlib
import io
import logging
import threading
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .abstract_store import (
    AbstractStore,
)
from .events import (
    StoreTransactionEndEvent,
    StoreTransactionStartEvent,
)
from .utils import (
    DEFAULT_BUFFER_SIZE,
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
        return is_listened(self.event_manager, *event_classes)

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
        if progress_is_listened(self.event_manager):
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
        if progress_is_listened(self.event_manager):
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

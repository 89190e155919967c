"""Utilities for key-value stores: streaming helpers, transactions, progress.

File-like helpers
-----------------
:func:`buffer_iterator` turns a readable file-like object into an iterator of
byte buffers, which lets data be copied from one stream to another without
holding it all in memory.  :class:`BufferIteratorIO` goes the other way: it
wraps an iterator of byte buffers in a readable file-like object, which is
how a store that filters or joins streams hands out data.

Transactions
------------
:class:`DummyTransactionContext` is for stores without any notion of a
transaction; :class:`SimpleTransactionContext` handles nesting, locking and
the store events of a transaction for stores that can begin, commit and roll
back.
"""
from __future__ import annotations

import io
import itertools
import logging
import sys
import threading
from typing import Any, Callable, Iterable, Iterator, List, Literal, Optional

from encore.events.abstract_event_manager import emit_held
from encore.events.progress_events import ProgressManager

from .events import (
    StoreDeleteEvent,
    StoreModificationEvent,
    StoreProgressEndEvent,
    StoreProgressStartEvent,
    StoreProgressStepEvent,
    StoreTransactionEndEvent,
    StoreTransactionStartEvent,
)

logger = logging.getLogger(__name__)

#: The default number of bytes read at a time (1 MiB).
DEFAULT_BUFFER_SIZE = 1048576


# ---------------------------------------------------------------------------
# Context manager support
# ---------------------------------------------------------------------------

class _ContextManagerProxy(object):
    """Wrap an object that lacks ``__enter__``/``__exit__``."""

    __slots__ = ("_wrapped",)

    def __init__(self, wrapped: Any) -> None:
        object.__setattr__(self, "_wrapped", wrapped)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._wrapped, name, value)

    def __iter__(self):
        return iter(self._wrapped)

    def __enter__(self) -> Any:
        return self._wrapped

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        return None


def add_context_manager_support(obj: Any) -> Any:
    """Make an object usable in a ``with`` statement.

    Parameters
    ----------
    obj : object
        Typically a file-like object returned by a third-party library.

    Returns
    -------
    object
        ``obj`` itself when its type already supports the context manager
        protocol, otherwise a thin proxy that forwards every attribute to
        ``obj`` and whose ``with`` block yields ``obj`` and does nothing on
        exit.  (Encore 0.8 set instance attributes, which ``with`` ignores.)
    """
    kind = type(obj)
    if hasattr(kind, "__enter__") and hasattr(kind, "__exit__"):
        return obj
    return _ContextManagerProxy(obj)


class UserTag(str):
    """A user tag (a string) that also answers a call with itself.

    The abstract API makes ``user_tag`` a property, but some Encore 0.8
    stores (the joined and dynamic-URL stores) defined ``user_tag()`` as a
    method; returning a ``UserTag`` keeps both spellings working.
    """

    __slots__ = ()

    def __call__(self) -> str:
        """Return the tag as a plain string.

        Returns
        -------
        str
            The tag.
        """
        return str(self)


# ---------------------------------------------------------------------------
# Streaming helpers
# ---------------------------------------------------------------------------

def _chunk_bytes(chunk: Any) -> bytes:
    """Return a chunk read from a data stream as ``bytes``, refusing anything else.

    ``bytes`` come back as they are, ``bytearray`` and ``memoryview`` (and
    ``bytes`` subclasses) as a ``bytes`` copy; ``None`` (what a non-blocking
    stream returns) and text raise ``TypeError`` with a message naming the
    likely cause.  Stores call it on every chunk they keep.
    """
    if type(chunk) is bytes:
        return chunk
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        return bytes(chunk)
    if chunk is None:
        raise TypeError("the data stream returned None (a non-blocking stream?)")
    raise TypeError(
        "data streams must produce bytes, got {} (open files in binary mode)".format(
            type(chunk).__name__)
    )


def _read_chunks(stream: Any, buffer_size: int) -> Iterator[bytes]:
    """Yield a stream's non-empty chunks as ``bytes`` (checked with
    :func:`_chunk_bytes`) until it ends; ``None`` from the stream raises."""
    read = stream.read
    while True:
        chunk = read(buffer_size)
        if type(chunk) is not bytes:
            chunk = _chunk_bytes(chunk)
        if not chunk:
            return
        yield chunk


def buffer_iterator(
    filelike: Any,
    buffer_size: int = DEFAULT_BUFFER_SIZE,
    progress: Optional[Callable[..., Any]] = None,
    max_bytes: Optional[int] = None,
) -> Iterator[bytes]:
    """Iterate over the contents of a file-like object in buffers.

    Parameters
    ----------
    filelike : file-like
        Any object with a ``read(size)`` method returning bytes.
    buffer_size : int, optional
        The number of bytes to read at a time (default 1 MiB).
    progress : callable, optional
        Called as ``progress(step=n)`` after each read, ``n`` being the number
        of bytes read so far (a :class:`StoreProgressManager` fits).
    max_bytes : int, optional
        Stop after this many bytes.

    Yields
    ------
    bytes
        Non-empty buffers of at most ``buffer_size`` bytes.

    Raises
    ------
    TypeError
        If the stream produces something other than bytes (text, say).
    """
    if buffer_size is None or buffer_size <= 0:
        buffer_size = DEFAULT_BUFFER_SIZE
    total = 0
    while True:
        size = buffer_size
        if max_bytes is not None:
            size = min(size, max_bytes - total)
            if size <= 0:
                break
        chunk = filelike.read(size)
        if chunk is None:  # this iterator has always taken None for the end
            break
        chunk = _chunk_bytes(chunk)
        if not chunk:
            break
        total += len(chunk)
        if progress is not None:
            progress(step=total)
        yield chunk
    if progress is not None and total == 0:
        progress(step=0)


def copy_stream(
    source: Any,
    write: Callable[[bytes], Any],
    buffer_size: int = DEFAULT_BUFFER_SIZE,
    progress: Optional[Callable[..., Any]] = None,
    max_bytes: Optional[int] = None,
) -> int:
    """Copy a readable stream into a ``write`` callable, buffer by buffer.

    Parameters
    ----------
    source : file-like
        The stream to read from.
    write : callable
        Called with each buffer, e.g. the ``write`` method of a file.
    buffer_size : int, optional
        The number of bytes to read at a time.
    progress : callable, optional
        Called as ``progress(step=n)`` with the bytes copied so far.
    max_bytes : int, optional
        Copy at most this many bytes.

    Returns
    -------
    int
        The number of bytes copied.

    Raises
    ------
    TypeError
        If the source produces something other than bytes.
    """
    total = 0
    for chunk in buffer_iterator(source, buffer_size, progress, max_bytes):
        write(chunk)
        total += len(chunk)
    return total


class BufferIteratorIO(io.RawIOBase):
    """A readable file-like object over an iterator of byte buffers.

    Stores that transform or combine streams hand out one of these so that
    data keeps flowing in buffers instead of being joined in memory.

    Parameters
    ----------
    iterator : iterable of bytes
        Produces the successive buffers, e.g. :func:`buffer_iterator`.
    """

    def __init__(self, iterator: Iterable[bytes]) -> None:
        super().__init__()
        self._iterator: Optional[Iterator[bytes]] = iter(iterator)
        self._pending = b""

    def readable(self) -> bool:
        """Whether the stream can be read.

        Returns
        -------
        bool
            Always ``True``.
        """
        return True

    def _next_chunk(self) -> Optional[bytes]:
        iterator = self._iterator
        if iterator is None:
            return None
        try:
            chunk = next(iterator)
        except StopIteration:
            self._iterator = None
            return None
        return _chunk_bytes(chunk)

    def read(self, buffer_size: Optional[int] = -1, *, size: Optional[int] = None) -> bytes:
        """Read and return up to ``buffer_size`` bytes.

        Parameters
        ----------
        buffer_size : int, optional
            The number of bytes wanted (Encore's name; given by position
            this is the usual ``read(n)``); ``None`` or a negative number
            (the default) reads everything that is left.  (Encore 0.8 read
            at most 1 MiB by default and misbehaved with negative sizes.)
        size : int, optional
            Keyword only: the name :class:`io.RawIOBase` uses, accepted too.

        Returns
        -------
        bytes
            Fewer than the wanted bytes only at the end of the stream.

        Raises
        ------
        TypeError
            If both ``buffer_size`` and ``size`` are given.
        ValueError
            If the stream is closed.
        """
        if size is not None:
            if buffer_size is not None and buffer_size != -1:
                raise TypeError("give either buffer_size or size, not both")
            buffer_size = size
        size = buffer_size
        if self.closed:
            raise ValueError("read from a closed BufferIteratorIO")
        if size is None or size < 0:
            parts = [self._pending]
            self._pending = b""
            while True:
                chunk = self._next_chunk()
                if chunk is None:
                    break
                parts.append(chunk)
            return b"".join(parts)
        pending = self._pending
        if len(pending) < size:
            parts = [pending]
            have = len(pending)
            while have < size:
                chunk = self._next_chunk()
                if chunk is None:
                    break
                parts.append(chunk)
                have += len(chunk)
            pending = b"".join(parts)
        if len(pending) <= size:
            self._pending = b""
            return pending
        self._pending = pending[size:]
        return pending[:size]

    def readinto(self, buffer: Any) -> int:
        """Read bytes into a pre-allocated writable buffer.

        Parameters
        ----------
        buffer : bytearray or memoryview
            The buffer to fill.

        Returns
        -------
        int
            The number of bytes read (0 at the end of the stream).
        """
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        """Read everything that is left.

        Returns
        -------
        bytes
            The rest of the stream.
        """
        return self.read(-1)

    def close(self) -> None:
        """Close the stream and release the underlying iterator."""
        iterator = self._iterator
        self._iterator = None
        self._pending = b""
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
        super().close()


def tee(filelike: Any, n: int = 2, buffer_size: int = DEFAULT_BUFFER_SIZE) -> List[BufferIteratorIO]:
    """Split one readable stream into ``n`` independent streams.

    Parameters
    ----------
    filelike : file-like
        The stream to split.
    n : int, optional
        The number of streams wanted (default 2).
    buffer_size : int, optional
        The number of bytes read at a time.

    Returns
    -------
    list of BufferIteratorIO
        Streams that each yield the whole content.  Buffers are kept only
        until every stream has read past them, so reading the streams in
        step keeps memory bounded, while reading one to the end first holds
        the whole content (as with :func:`itertools.tee`).
    """
    iterators = itertools.tee(buffer_iterator(filelike, buffer_size), n)
    return [BufferIteratorIO(iterator) for iterator in iterators]


class hashing_file(object):
    """Wrap a readable stream so that everything read is also hashed.

    Parameters
    ----------
    filelike : file-like
        The stream to read.
    hash : hashlib hash object
        Updated with every byte read, e.g. ``hashlib.sha256()``.

    Attributes
    ----------
    hash : hashlib hash object
        The hash object given.
    len : int
        The number of bytes read so far.
    """

    def __init__(self, filelike: Any, hash: Any) -> None:
        self.filelike = filelike
        self.hash = hash
        self.len = 0

    def read(self, nbytes: int = -1, *, size: Optional[int] = None) -> bytes:
        """Read from the stream, updating the hash and the byte count.

        Parameters
        ----------
        nbytes : int, optional
            The number of bytes wanted (Encore's name); negative (the
            default) reads everything.
        size : int, optional
            Keyword only: the usual file name of ``nbytes``, accepted too.

        Returns
        -------
        bytes
            The bytes read.

        Raises
        ------
        TypeError
            If both ``nbytes`` and ``size`` are given.
        """
        if size is not None:
            if nbytes != -1:
                raise TypeError("give either nbytes or size, not both")
            nbytes = size
        size = nbytes
        data = self.filelike.read(size)
        self.hash.update(data)
        self.len += len(data)
        return data

    def close(self) -> None:
        """Close the underlying stream."""
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> "hashing_file":
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self.close()


# ---------------------------------------------------------------------------
# Events and progress
# ---------------------------------------------------------------------------

def is_listened(event_manager: Any, *event_classes: type) -> bool:
    """Tell cheaply whether emitting any of the event classes can reach a
    listener.

    This is the one place stores ask "is anyone listening?" before they
    build modification or progress events (see
    :meth:`~encore.events.abstract_event_manager.BaseEventManager.has_listeners`).

    Parameters
    ----------
    event_manager : BaseEventManager
        The manager events would be emitted on.
    *event_classes : type
        The classes of the events that would be emitted.

    Returns
    -------
    bool
        ``False`` only when the manager can tell that no listener would
        receive an event of any of the classes; an object that is not a
        :class:`~encore.events.abstract_event_manager.BaseEventManager` and
        has no ``has_listeners`` method is assumed to have listeners.
    """
    has_listeners = getattr(event_manager, "has_listeners", None)
    if has_listeners is None:
        return True
    for event_class in event_classes:
        if has_listeners(event_class):
            return True
    return False


def progress_is_listened(event_manager: Any) -> bool:
    """Whether any store progress event would reach a listener.

    A listener may be connected to any of the three concrete progress
    classes (or to a common ancestor such as
    :class:`~encore.events.progress_events.ProgressStartEvent`), so asking
    about their base class would not be enough.

    Parameters
    ----------
    event_manager : BaseEventManager
        The manager events would be emitted on.

    Returns
    -------
    bool
        ``True`` if a start, step or end event could be delivered.
    """
    return is_listened(
        event_manager, StoreProgressStartEvent, StoreProgressStepEvent, StoreProgressEndEvent)


class StoreProgressManager(ProgressManager):
    """A :class:`~encore.events.progress_events.ProgressManager` emitting the
    store progress events.

    Parameters are those of
    :class:`~encore.events.progress_events.ProgressManager`; stores pass
    ``key`` and ``metadata`` as extra keyword arguments, which every event
    carries.
    """

    #: Emitted by :meth:`start`.
    StartEventType = StoreProgressStartEvent
    #: Emitted by :meth:`step`.
    StepEventType = StoreProgressStepEvent
    #: Emitted by :meth:`end`.
    EndEventType = StoreProgressEndEvent


class _NullProgress(object):
    """A progress manager that does nothing, used when nobody listens."""

    __slots__ = ()

    def start(self, **kwargs: Any) -> None:
        pass

    def step(self, message: Optional[str] = None, step: Optional[int] = None, **kwargs: Any) -> None:
        pass

    def end(self, message: Optional[str] = None, exit_state: str = "normal", **kwargs: Any) -> None:
        pass

    __call__ = step

    def __enter__(self) -> "_NullProgress":
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        return None


_NULL_PROGRESS = _NullProgress()


def remaining_size(stream: Any) -> Optional[int]:
    """Return the number of bytes left to read in a stream, if it can tell.

    Parameters
    ----------
    stream : file-like
        A binary stream.  Only a seekable stream (a file opened on disk, an
        :class:`io.BytesIO`) can tell; its position is left where it was.

    Returns
    -------
    int or None
        The bytes from the current position to the end, or ``None`` for a
        stream that cannot say (a pipe, a socket, a generator of chunks).
    """
    try:
        seekable = stream.seekable
    except AttributeError:
        return None
    try:
        if not seekable():
            return None
        position = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(position)
    except (OSError, ValueError, AttributeError, TypeError):
        return None
    if not isinstance(end, int) or not isinstance(position, int):
        return None
    return max(0, end - position)


def store_progress(
    store: Any,
    key: str,
    metadata: Optional[dict],
    message: str,
    steps: int = -1,
    stream: Any = None,
) -> Any:
    """Return a progress manager for a long operation on one key of a store.

    Parameters
    ----------
    store : AbstractReadOnlyStore
        The store; its ``event_manager`` receives the events and it is their
        ``source``.
    key : str
        The key concerned.
    metadata : dict or None
        The key's metadata, carried by the events.
    message : str
        Describes the operation.
    steps : int, optional
        The total number of bytes, or ``-1`` when unknown.
    stream : file-like, optional
        The stream about to be read.  When ``steps`` is unknown and the
        stream can tell how many bytes are left (see
        :func:`remaining_size`: a file, a :class:`io.BytesIO`), that is the
        total announced, so a progress display draws a bar with a percentage
        rather than a spinner.

    Returns
    -------
    StoreProgressManager
        Or a do-nothing stand-in with the same methods when no listener is
        for any store progress event (see :func:`progress_is_listened`).
        Either way use it as a context manager and call ``step(step=n)`` with
        the number of bytes done, once per buffer.
    """
    manager = store.event_manager
    if not progress_is_listened(manager):
        return _NULL_PROGRESS
    if steps < 0 and stream is not None:
        size = remaining_size(stream)
        if size is not None:
            steps = size
    return StoreProgressManager(
        event_manager=manager,
        source=store,
        message=message,
        steps=steps,
        key=key,
        metadata=metadata,
    )


# ---------------------------------------------------------------------------
# Holding modification events back
# ---------------------------------------------------------------------------

class _Holds(threading.local):
    """Per thread: the open holds, innermost last."""

    def __init__(self) -> None:
        # Set for every thread: a missing attribute of a threading.local is
        # slow to look up, and every modification event looks.
        self.stack: List["EventHold"] = []


_holds = _Holds()


class EventHold(object):
    """Modification events of one store, held back on the current thread.

    This is the one mechanism by which a store delays its modification
    events until the writes they describe are final: the abstract
    :meth:`~encore.storage.abstract_store.AbstractStore.set` merges the
    events of its two parts into one, :class:`SimpleTransactionContext`
    emits the events of a transaction after it commits (and drops them
    after a rollback), and the composite stores emit theirs when a write or
    a transaction of theirs ends.

    While a hold is open, the store's
    :meth:`~encore.storage.abstract_store.AbstractReadOnlyStore._emit_modification`
    adds each event about the store to the innermost open hold of this
    thread that takes it (see :func:`event_hold`) instead of emitting it.
    The owner of the hold closes it, getting the events back, and emits
    them (:func:`emit_events`) or drops them.

    Parameters
    ----------
    store : AbstractReadOnlyStore
        The store whose events are held.
    key : str, optional
        Hold only the set and update events of this key, as
        ``(event_class, metadata)`` pairs, for the owner to merge them into
        one event.  By default every modification event of the store is
        held, as events.
    """

    __slots__ = ("store", "key", "events")

    def __init__(self, store: Any, key: Optional[str] = None) -> None:
        self.store = store
        self.key = key
        self.events: List[Any] = []

    def open(self) -> "EventHold":
        """Start holding the store's events on this thread.

        Returns
        -------
        EventHold
            ``self``.
        """
        _holds.stack.append(self)
        return self

    def close(self) -> List[Any]:
        """Stop holding and return what was held.

        Returns
        -------
        list
            The events held (for a merging hold, ``(event_class,
            metadata)`` pairs), in the order they came.
        """
        stack = _holds.stack
        if stack and stack[-1] is self:
            stack.pop()  # the usual case: holds close innermost first
        else:
            for index in range(len(stack) - 1, -1, -1):
                if stack[index] is self:
                    del stack[index]
                    break
        events = self.events
        if events:
            self.events = []
        return events

    def takes(self, event_class: type, key: str) -> bool:
        """Whether this hold holds an event of ``event_class`` about ``key``.

        Parameters
        ----------
        event_class : type
            The modification event class.
        key : str
            The key concerned.

        Returns
        -------
        bool
            Always for a hold of every event; for a merging hold, set and
            update events of its key.
        """
        if self.key is None:
            return True
        return self.key == key and event_class is not StoreDeleteEvent

    def add(self, event_class: type, key: str, metadata: Optional[dict]) -> None:
        """Hold an event (called by ``_emit_modification``).

        Parameters
        ----------
        event_class : type
            The modification event class.
        key : str
            The key concerned.
        metadata : dict or None
            The metadata the event carries; a hold of every event builds
            the event at once with a copy (the store may change the dict it
            keeps before the hold ends).
        """
        if self.key is not None:
            self.events.append((event_class, metadata))
        else:
            if metadata is not None:
                from .abstract_store import copy_metadata

                metadata = copy_metadata(metadata)
            self.events.append(event_class(source=self.store, key=key, metadata=metadata))

    def add_event(self, event: Any) -> None:
        """Hold an event already built (one emitted by the store itself, or
        released by an inner hold).

        Parameters
        ----------
        event : StoreModificationEvent
            The event.
        """
        if self.key is not None:
            self.events.append((type(event), event.metadata))
        else:
            self.events.append(event)


def event_hold(store: Any, event_class: type, key: str) -> Optional[EventHold]:
    """Return the innermost open hold of this thread taking an event.

    Parameters
    ----------
    store : AbstractReadOnlyStore
        The store the event is about (its source).
    event_class : type
        The modification event class.
    key : str
        The key concerned.

    Returns
    -------
    EventHold or None
        ``None`` when the event should be emitted now.
    """
    stack = _holds.stack
    if not stack:
        return None
    for index in range(len(stack) - 1, -1, -1):
        hold = stack[index]
        if hold.store is store and hold.takes(event_class, key):
            return hold
    return None


def emit_events(store: Any, events: Iterable[Any]) -> None:
    """Emit events that were held back, on a store's event manager.

    A modification event that an enclosing hold of this thread takes (a
    transaction nested in a write that holds its events) goes to that hold
    instead.

    Parameters
    ----------
    store : AbstractReadOnlyStore
        The store whose ``event_manager`` receives them.
    events : iterable of BaseEvent
        The events, emitted in order (see
        :func:`~encore.events.abstract_event_manager.emit_held`).
    """
    manager = store.event_manager
    for event in events:
        # A hold of an enclosing write takes them over.
        hold = None
        if isinstance(event, StoreModificationEvent):
            hold = event_hold(store, type(event), getattr(event, "key", ""))
        if hold is not None:
            hold.add_event(event)
        else:
            emit_held(manager, event)


# ---------------------------------------------------------------------------
# Transactions
# ---------------------------------------------------------------------------

_lock_creation_lock = threading.Lock()


def transaction_lock(store: Any) -> "threading.RLock":
    """Return the re-entrant lock that serialises a store's transactions.

    Parameters
    ----------
    store : AbstractStore
        The store.

    Returns
    -------
    threading.RLock
        Created on first use and kept on the store.
    """
    lock = store.__dict__.get("_transaction_lock")
    if lock is None:
        with _lock_creation_lock:
            lock = store.__dict__.get("_transaction_lock")
            if lock is None:
                lock = threading.RLock()
                store.__dict__["_transaction_lock"] = lock
    return lock


class DummyTransactionContext(object):
    """A transaction context for stores that have no transactions.

    Entering and leaving it does nothing; writes made inside happen at once
    and their events are emitted at once.

    Parameters
    ----------
    store : AbstractStore
        The store the context belongs to.
    """

    store: Any

    def __new__(cls, store: Any) -> "DummyTransactionContext":
        existing = getattr(store, "_transaction", None)
        if type(existing) is cls:
            return existing
        context = super().__new__(cls)
        context.store = store
        try:
            store._transaction = context
        except AttributeError:
            pass
        return context

    def __init__(self, store: Any) -> None:
        self.store = store

    def __enter__(self) -> "DummyTransactionContext":
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> Literal[False]:
        return False


class SimpleTransactionContext(object):
    """A nestable transaction with store events, for stores that can begin,
    commit and roll back.

    Each store has one context at a time: constructing one for a store that
    already has an active :class:`SimpleTransactionContext` returns that
    context.  Only the outermost ``with`` block begins and ends the
    transaction; inner blocks just nest.  A re-entrant per-store lock is held
    from the outermost entry to its exit, so transactions of other threads
    wait for it.

    The outermost entry calls :meth:`begin` and emits a
    :class:`~encore.storage.events.StoreTransactionStartEvent`.  While it is
    open, the store's modification events emitted on this thread are held
    back in an :class:`EventHold`.  The outermost exit calls :meth:`commit` (or :meth:`rollback` when
    the block raised, or when the commit failed), emits a
    :class:`~encore.storage.events.StoreTransactionEndEvent` with
    ``state='done'`` or ``'failed'``, and then re-emits the held events in
    order -- unless the transaction failed and the store can roll back, in
    which case they are dropped, since the writes they describe were undone.
    The context's state is reset even when commit or rollback raises.
    Exceptions are never suppressed.

    Parameters
    ----------
    store : AbstractStore
        The store.  Its optional ``_begin_transaction``,
        ``_commit_transaction`` and ``_rollback_transaction`` methods do the
        real work.

    Events
    ------
    StoreTransactionStartEvent
        When the outermost transaction begins.
    StoreTransactionEndEvent
        When it ends, with ``state`` ``'done'`` or ``'failed'``.
    """

    store: Any
    _depth: int
    _owner: Optional[int]
    _hold: Optional[EventHold]
    _lock: Any  # threading.RLock

    def __new__(cls, store: Any) -> "SimpleTransactionContext":
        existing = getattr(store, "_transaction", None)
        if isinstance(existing, cls) and existing.store is store:
            return existing
        context = super().__new__(cls)
        context.store = store
        context._depth = 0
        context._owner = None
        context._hold = None
        context._lock = transaction_lock(store)
        try:
            store._transaction = context
        except AttributeError:
            pass
        return context

    def __init__(self, store: Any) -> None:
        # All state is set up once, in __new__, so that re-constructing the
        # context of an active transaction does not reset it.
        pass

    @property
    def active(self) -> bool:
        """bool : Whether a transaction is open."""
        return self._depth > 0

    def begin(self) -> None:
        """Begin the transaction: calls the store's ``_begin_transaction``."""
        method = getattr(self.store, "_begin_transaction", None)
        if method is not None:
            method()

    def commit(self) -> None:
        """Commit the transaction: calls the store's ``_commit_transaction``."""
        method = getattr(self.store, "_commit_transaction", None)
        if method is not None:
            method()

    def rollback(self) -> None:
        """Roll back: calls the store's ``_rollback_transaction``."""
        method = getattr(self.store, "_rollback_transaction", None)
        if method is not None:
            method()

    def _capture(self, event: Any) -> None:
        # Events a store emits itself, rather than through
        # _emit_modification, join the hold too.
        hold = self._hold
        if hold is not None and event.source is self.store and threading.get_ident() == self._owner:
            hold.add_event(event)
            event.mark_as_handled()

    def __enter__(self) -> "SimpleTransactionContext":
        self._lock.acquire()
        if self._depth > 0:
            self._depth += 1
            return self
        try:
            self.begin()
        except BaseException:
            self._lock.release()
            raise
        self._depth = 1
        self._owner = threading.get_ident()
        self._hold = EventHold(self.store).open()
        try:
            self.store._transaction = self
        except AttributeError:
            pass
        manager = self.store.event_manager
        manager.connect(StoreModificationEvent, self._capture, priority=sys.maxsize)
        if is_listened(manager, StoreTransactionStartEvent):
            manager.emit(StoreTransactionStartEvent(source=self.store))
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> Literal[False]:
        if self._depth > 1:
            self._depth -= 1
            self._lock.release()
            return False
        store = self.store
        manager = store.event_manager
        hold, self._hold = self._hold, None
        captured = hold.close() if hold is not None else []
        state = "failed"
        error: Optional[BaseException] = None
        try:
            if exc_type is None:
                self.commit()
                state = "done"
            else:
                self.rollback()
        except BaseException as exc:  # noqa: B902 - re-raised below
            error = exc
            if exc_type is None:
                try:
                    self.rollback()
                except BaseException:
                    logger.exception("Rolling back after a failed commit failed too")
        finally:
            self._depth = 0
            self._owner = None
            try:
                manager.disconnect(StoreModificationEvent, self._capture)
            except KeyError:
                pass
            if getattr(store, "_transaction", None) is self:
                try:
                    store._transaction = None
                except AttributeError:
                    pass
            self._lock.release()
        if is_listened(manager, StoreTransactionEndEvent):
            manager.emit(StoreTransactionEndEvent(source=store, state=state))
        if state == "done" or getattr(store, "_rollback_transaction", None) is None:
            emit_events(store, captured)
        if error is not None:
            raise error
        return False


# ---------------------------------------------------------------------------
# Ranges
# ---------------------------------------------------------------------------

def slice_offsets(start: Optional[int], end: Optional[int], size: Optional[int]) -> tuple:
    """Resolve slice-style offsets against a size.

    Parameters
    ----------
    start, end : int or None
        Offsets as for ``data[start:end]``; negative values count from the
        end and need a known ``size``.
    size : int or None
        The length of the data, if known.

    Returns
    -------
    tuple of (int, int or None)
        The absolute start and end (``None``: to the end of the data).

    Raises
    ------
    ValueError
        If an offset is negative and ``size`` is unknown.
    """
    if size is not None:
        first, last, _ = slice(start, end).indices(size)
        return first, max(first, last)
    if (start is not None and start < 0) or (end is not None and end < 0):
        raise ValueError("negative offsets need a known data size")
    first = 0 if start is None else start
    if end is not None and end < first:
        end = first
    return first, end


class _ClosingIterator(object):
    """Iterate over a stream's buffers and close the stream at the end."""

    def __init__(self, stream: Any, buffer_size: int, max_bytes: Optional[int]) -> None:
        self._stream = stream
        self._iterator = buffer_iterator(stream, buffer_size, None, max_bytes)

    def __iter__(self) -> "_ClosingIterator":
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._iterator)
        except StopIteration:
            self.close()
            raise

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()


def range_stream(
    stream: Any,
    start: Optional[int] = None,
    end: Optional[int] = None,
    size: Optional[int] = None,
    buffer_size: int = DEFAULT_BUFFER_SIZE,
) -> Any:
    """Narrow a readable stream, positioned at its start, to ``[start:end]``.

    Parameters
    ----------
    stream : file-like
        A stream at offset 0; it is seeked when seekable, otherwise the
        leading bytes are read and dropped.
    start, end : int or None
        Slice-style offsets (``end`` exclusive).
    size : int or None
        The length of the data, needed for negative offsets.
    buffer_size : int, optional
        The buffer size used when skipping and copying.

    Returns
    -------
    file-like
        ``stream`` itself when no end is given, otherwise a
        :class:`BufferIteratorIO` that stops at ``end`` and closes
        ``stream`` when closed or exhausted.
    """
    first, last = slice_offsets(start, end, size)
    if first:
        seekable = getattr(stream, "seekable", None)
        if seekable is not None and seekable():
            stream.seek(first)
        else:
            for _ in buffer_iterator(stream, buffer_size, None, first):
                pass
    if last is None:
        return stream
    return BufferIteratorIO(_ClosingIterator(stream, buffer_size, last - first))

"""The key-value store API.

A store maps string keys to values; each value is a binary data stream plus a
dictionary of metadata.  This module defines the abstract classes every store
derives from:

* :class:`AbstractReadOnlyStore` -- reading, querying, copying out;
* :class:`AbstractStore` -- adds writing, deleting and transactions;
* :class:`AbstractAuthorizingStore` -- adds per-key permissions;

and :class:`Value`, what :meth:`AbstractReadOnlyStore.get` returns.

A new store implements a small core of abstract methods (``get`` and
``query`` to read; ``set_data``, ``set_metadata`` and ``delete`` to write) and
inherits every other method from the base classes, overriding one only to make
it faster.  The base classes also check the arguments of every public method
-- including the methods a subclass defines -- before the subclass's code
runs, so every store rejects bad input with the same clear errors and without
writing anything.
"""
from __future__ import annotations

import abc
import fnmatch
import functools
import inspect
import io
import math
import os
import warnings
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    NamedTuple,
    Optional,
    Protocol,
    Sized,
    Tuple,
    cast,
    runtime_checkable,
)

from . import _metadata_codec
from ._atomic_file import replacing
from .events import StoreDeleteEvent, StoreSetEvent, StoreUpdateEvent
from .utils import (
    DEFAULT_BUFFER_SIZE,
    EventHold,
    SimpleTransactionContext,
    _holds,
    buffer_iterator,
    copy_stream,
    event_hold,
    is_listened,
    progress_is_listened,
    range_stream,
    store_progress,
)

if TYPE_CHECKING:  # the event manager interface, for annotations only
    from encore.events.abstract_event_manager import BaseEventManager

__all__ = [
    "StoreError",
    "ReadableStream",
    "DataStream",
    "AuthorizationError",
    "Value",
    "AbstractReadOnlyStore",
    "AbstractStore",
    "AbstractAuthorizingStore",
    "ValueParts",
    "value_parts",
    "checks_own_arguments",
    "check_key",
    "check_metadata",
    "check_data",
    "copy_metadata",
    "select_metadata",
]


class StoreError(RuntimeError):
    """The base class of errors raised by stores."""


class AuthorizationError(StoreError):
    """Raised when the user is not allowed to perform an operation."""


# ---------------------------------------------------------------------------
# Stream types
# ---------------------------------------------------------------------------

@runtime_checkable
class ReadableStream(Protocol):
    """What a store reads data from: anything whose ``read(size)`` returns
    bytes (``b''`` at the end).

    An open binary file, an :class:`io.BytesIO`, or a small object of yours
    all fit; :func:`check_data` is the run-time check.
    """

    def read(self, size: int, /) -> bytes:
        """Return up to ``size`` bytes; ``b''`` at the end of the stream."""
        ...


@runtime_checkable
class DataStream(ReadableStream, Protocol):
    """What a store hands out: a readable stream that the caller closes
    (``get_data``, ``get_data_range``, :attr:`Value.data`)."""

    def close(self) -> None:
        """Release what the stream holds."""
        ...


# ---------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------

def check_key(key: Any) -> str:
    """Check that a key is a string.

    Parameters
    ----------
    key : object
        The candidate key.

    Returns
    -------
    str
        The key.

    Raises
    ------
    TypeError
        If ``key`` is not a ``str`` (bytes included).
    """
    if type(key) is str or isinstance(key, str):
        return key
    raise TypeError("store keys must be str, not {}: {!r}".format(type(key).__name__, key))


def _json_copy(value: Any, path: str) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise ValueError(
                "metadata value at {} is {!r}, which JSON cannot represent".format(
                    path or "top level", value)
            )
        return value
    if kind is dict:
        result = {}
        for name, item in value.items():
            if type(name) is not str and not isinstance(name, str):
                raise TypeError(
                    "metadata keys must be str, found {} key {!r} at {}".format(
                        type(name).__name__, name, path or "top level")
                )
            result[str(name)] = _json_copy(item, path + "." + name if path else name)
        return result
    if kind is list or kind is tuple:
        return [_json_copy(item, "{}[{}]".format(path, index)) for index, item in enumerate(value)]
    # Subclasses of the JSON types (IntEnum, OrderedDict, ...) become the base type.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _json_copy(float(value), path)
    if isinstance(value, dict):
        return _json_copy(dict(value), path)
    if isinstance(value, (list, tuple)):
        return _json_copy(list(value), path)
    # datetime, Decimal, bytes, set, UUID, ... (or a TypeError naming the path)
    return _metadata_codec.check_value(value, path)


def check_metadata(metadata: Any) -> Dict[str, Any]:
    """Check that metadata is JSON-representable and return a private copy.

    Parameters
    ----------
    metadata : dict
        A dictionary with ``str`` keys whose values are ``str``, ``int``,
        finite ``float``, ``bool``, ``None``, lists (or tuples) and
        dictionaries of such values, or values of the types Encore 0.8
        programs stored: ``datetime.datetime``, ``datetime.date``,
        ``datetime.time``, ``decimal.Decimal``, ``bytes``, ``set``,
        ``frozenset`` and ``uuid.UUID`` (see
        :mod:`encore.storage._metadata_codec` for their JSON form).

    Returns
    -------
    dict
        A deep copy, with tuples turned into lists (as JSON would), and any
        ``tzinfo`` replaced by its fixed UTC offset.

    Raises
    ------
    TypeError
        If ``metadata`` is not a dict, has a non-``str`` key at any level, or
        holds a value of another type; the message names the value's path
        (``a.b[2]``).
    ValueError
        If it holds a NaN or infinite float (or a signalling Decimal NaN).
    """
    if type(metadata) is dict:
        # Fast path: flat metadata of plain scalars needs only a shallow copy.
        for name, value in metadata.items():
            kind = type(name)
            if kind is not str:
                break
            kind = type(value)
            if kind is str or kind is int or kind is bool or value is None:
                continue
            if kind is float and value - value == 0.0:  # finite
                continue
            break
        else:
            return metadata.copy()
    elif not isinstance(metadata, dict):
        raise TypeError(
            "metadata must be a dict, not {}".format(type(metadata).__name__)
        )
    return _json_copy(metadata, "")


def copy_metadata(metadata: Dict[str, Any]) -> Dict[str, Any]:
    """Return an independent deep copy of (already checked) metadata.

    Parameters
    ----------
    metadata : dict
        JSON-like metadata.

    Returns
    -------
    dict
        A copy sharing no mutable part with ``metadata``.
    """
    result = metadata.copy()
    for value in result.values():
        kind = type(value)
        if kind is dict or kind is list or kind is set:
            break
    else:
        return result  # flat: the shallow copy is independent already
    for name, value in result.items():
        kind = type(value)
        if kind is dict:
            result[name] = copy_metadata(value)
        elif kind is list:
            result[name] = _copy_list(value)
        elif kind is set:
            result[name] = set(value)  # its elements are immutable
    return result


def _copy_list(values: list) -> list:
    result = list(values)
    for index, value in enumerate(result):
        kind = type(value)
        if kind is dict:
            result[index] = copy_metadata(value)
        elif kind is list:
            result[index] = _copy_list(value)
        elif kind is set:
            result[index] = set(value)
    return result


def select_metadata(metadata: Dict[str, Any], select: Optional[Iterable[str]]) -> Dict[str, Any]:
    """Return a copy of metadata limited to the selected names.

    Parameters
    ----------
    metadata : dict
        The full metadata.
    select : iterable of str or None
        The names wanted; ``None`` means all of them.

    Returns
    -------
    dict
        An independent copy holding the selected names that are present.
    """
    if select is None:
        return copy_metadata(metadata)
    return copy_metadata({name: metadata[name] for name in select if name in metadata})


_TRUSTED_STREAMS = frozenset({io.BytesIO, io.BufferedReader, io.FileIO, io.BufferedRandom})


def check_data(data: Any) -> ReadableStream:
    """Check that an object can serve as a readable binary stream.

    Parameters
    ----------
    data : file-like
        Anything with a ``read`` method producing bytes.

    Returns
    -------
    file-like
        ``data`` itself.

    Raises
    ------
    TypeError
        If ``data`` has no ``read`` method, is a text stream, or is a
        ``bytes``/``str`` object rather than a stream.
    """
    if type(data) in _TRUSTED_STREAMS:
        return data
    if isinstance(data, (bytes, bytearray, memoryview, str)):
        raise TypeError(
            "data must be a readable binary file-like object, not {} "
            "(wrap bytes in io.BytesIO, or use from_bytes)".format(type(data).__name__)
        )
    if isinstance(data, io.TextIOBase):
        raise TypeError("data must be a binary stream, not a text stream ({})".format(
            type(data).__name__))
    if not callable(getattr(data, "read", None)):
        raise TypeError(
            "data must be a readable file-like object, {} has no read() method".format(
                type(data).__name__)
        )
    return data


def _check_select(select: Any) -> Any:
    if select is None:
        return None
    if isinstance(select, (str, bytes)):
        raise TypeError("select must be an iterable of metadata names, not a single string")
    return select


def _check_value(value: Any) -> Any:
    if type(value) is tuple and len(value) == 2:
        return (check_data(value[0]), check_metadata(value[1]))
    if isinstance(value, Value):
        return value
    if isinstance(value, tuple):
        if len(value) != 2:
            raise TypeError(
                "a value must be a Value or a (data, metadata) 2-tuple, got a {}-tuple".format(
                    len(value))
            )
        data, metadata = value
        return (check_data(data), check_metadata(metadata))
    kind = type(value)
    if hasattr(kind, "data") and hasattr(kind, "metadata"):
        return value  # a Value-like object from another library
    raise TypeError(
        "a value must be a Value or a (data, metadata) tuple, not {}".format(kind.__name__)
    )


def _check_path(path: Any) -> Any:
    if isinstance(path, (str, bytes, os.PathLike)):
        return path
    raise TypeError("path must be a str or os.PathLike, not {}".format(type(path).__name__))


def _check_bytes(data: Any) -> Any:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return data
    raise TypeError("data must be bytes, not {}".format(type(data).__name__))


def _check_offset(value: Any, name: str) -> Any:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise TypeError("{} must be an int or None, not {}".format(name, type(value).__name__))


# Wrapper factories, one per argument shape.  Each returns a function that
# checks (and normalises) the arguments, then calls the implementation.

def _takes_only_key(func: Callable) -> bool:
    try:
        parameters = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return False
    return len(parameters) == 2 and all(
        parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        and parameter.default is inspect.Parameter.empty
        for parameter in parameters)


def _wrap_key(func: Callable) -> Callable:
    if _takes_only_key(func):
        # The common (self, key) signature gets a leaner wrapper.
        @functools.wraps(func)
        def checked_key(self, key):
            if type(key) is not str:
                check_key(key)
            return func(self, key)
        return checked_key

    @functools.wraps(func)
    def checked(self, key, *args, **kwargs):
        if type(key) is not str:
            check_key(key)
        return func(self, key, *args, **kwargs)
    return checked


def _wrap_get_metadata(func: Callable) -> Callable:
    @functools.wraps(func)
    def checked(self, key, select=None, *args, **kwargs):
        if type(key) is not str:
            check_key(key)
        if select is not None:
            select = _check_select(select)
        return func(self, key, select, *args, **kwargs)
    return checked


def _wrap_range(func: Callable) -> Callable:
    @functools.wraps(func)
    def checked(self, key, start=None, end=None, *args, **kwargs):
        check_key(key)
        return func(self, key, _check_offset(start, "start"), _check_offset(end, "end"),
                    *args, **kwargs)
    return checked


_MISSING = object()


def _wrap_key_and(check_item: Callable[[Any], Any], name: str) -> Callable[[Callable], Callable]:
    """A wrapper factory for ``(self, key, item, ...)`` methods (``set``,
    ``set_data``, ``set_metadata``, ``update_metadata``, ``from_bytes``):
    checks the key, then passes ``check_item(item)`` on.  The item may be
    given by keyword, under the API's ``name`` or the implementation's own."""
    def wrap(func: Callable) -> Callable:
        own_name = _second_parameter(func, name)

        @functools.wraps(func)
        def checked(self, key, item=_MISSING, *args, **kwargs):
            if type(key) is not str:
                check_key(key)
            if item is _MISSING:
                if own_name in kwargs:
                    item = kwargs.pop(own_name)
                elif name in kwargs:
                    item = kwargs.pop(name)
                else:
                    raise TypeError("{}() missing the argument {!r}".format(func.__name__, name))
            return func(self, key, _checked_for(key, check_item, item), *args, **kwargs)
        return checked
    return wrap


def _checked_for(key: str, check_item: Callable[[Any], Any], item: Any) -> Any:
    """``check_item(item)``, its error message naming the key it was for."""
    try:
        return check_item(item)
    except (TypeError, ValueError) as error:
        if error.args and isinstance(error.args[0], str):
            error.args = ("key {!r}: {}".format(key, error.args[0]),) + error.args[1:]
        raise


def _wrap_path(func: Callable) -> Callable:
    @functools.wraps(func)
    def checked(self, key, path, *args, **kwargs):
        check_key(key)
        if "buffer" in kwargs and "buffer_size" not in kwargs:
            # The manual's example spells it ``buffer=``.
            kwargs["buffer_size"] = kwargs.pop("buffer")
        return func(self, key, _check_path(path), *args, **kwargs)
    return checked


def _pairs(keys: Iterable[Any], items: Iterable[Any], check_item: Callable[[Any], Any]) -> Tuple[list, list]:
    checked_keys = []
    checked_items = []
    for key, item in zip(keys, items):
        checked_keys.append(check_key(key))
        checked_items.append(_checked_for(key, check_item, item))
    return checked_keys, checked_items


def _second_parameter(func: Callable, default: str) -> str:
    """The name of the parameter after ``self`` and the key(s)."""
    try:
        parameters = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return default
    if len(parameters) >= 3 and parameters[2].kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
        return parameters[2].name
    return default


def _wrap_multi(check_item: Callable[[Any], Any], name: str) -> Callable[[Callable], Callable]:
    def wrap(func: Callable) -> Callable:
        # The items may be passed by keyword (``values=``, ``datas=``,
        # ``metadatas=``), under the name the implementation uses.
        items_name = _second_parameter(func, name)

        @functools.wraps(func)
        def checked(self, keys, *args, **kwargs):
            if args:
                items, args = args[0], args[1:]
            elif items_name in kwargs:
                items = kwargs.pop(items_name)
            else:
                raise TypeError("{}() missing the argument {!r}".format(func.__name__, items_name))
            keys, items = _pairs(keys, items, check_item)
            return func(self, keys, items, *args, **kwargs)
        return checked
    return wrap


def _wrap_query(func: Callable) -> Callable:
    @functools.wraps(func)
    def checked(self, select=None, **kwargs):
        return func(self, _check_select(select), **kwargs)
    return checked


def _wrap_glob(func: Callable) -> Callable:
    @functools.wraps(func)
    def checked(self, pattern, *args, **kwargs):
        if not isinstance(pattern, str):
            raise TypeError("glob patterns must be str, not {}".format(type(pattern).__name__))
        return func(self, pattern, *args, **kwargs)
    return checked


_CHECKED_METHODS: Dict[str, Callable[[Callable], Callable]] = {
    "get": _wrap_key,
    "get_data": _wrap_key,
    "exists": _wrap_key,
    "delete": _wrap_key,
    "to_bytes": _wrap_key,
    "get_permissions": _wrap_key,
    "set_permissions": _wrap_key,
    "update_permissions": _wrap_key,
    "get_metadata": _wrap_get_metadata,
    "get_data_range": _wrap_range,
    "set": _wrap_key_and(_check_value, "value"),
    "set_data": _wrap_key_and(check_data, "data"),
    "set_metadata": _wrap_key_and(check_metadata, "metadata"),
    "update_metadata": _wrap_key_and(check_metadata, "metadata"),
    "from_bytes": _wrap_key_and(_check_bytes, "data"),
    "from_file": _wrap_path,
    "to_file": _wrap_path,
    "multiset": _wrap_multi(_check_value, "values"),
    "multiset_data": _wrap_multi(check_data, "datas"),
    "multiset_metadata": _wrap_multi(check_metadata, "metadatas"),
    "multiupdate_metadata": _wrap_multi(check_metadata, "metadatas"),
    "query": _wrap_query,
    "glob": _wrap_glob,
}


def checks_own_arguments(method: Callable) -> Callable:
    """Mark a store method as checking its own arguments.

    The store base classes wrap every public method of the API (see
    "Argument checking" in :class:`AbstractReadOnlyStore`) so that it checks
    and normalises its arguments before the store's code runs.  A method
    decorated with this is left unwrapped: it receives its arguments exactly
    as the caller gave them and must check them itself -- typically a hot
    path that checks more cheaply than the generic wrapper, as
    :meth:`~encore.storage.dict_memory_store.DictMemoryStore.get` does.

    Parameters
    ----------
    method : callable
        A method of a store class named like one of the API's methods.

    Returns
    -------
    callable
        ``method`` itself, marked.

    Examples
    --------
    ::

        class FastStore(AbstractStore):
            @checks_own_arguments
            def get(self, key):
                if type(key) is not str:
                    check_key(key)       # the same error as the wrapper's
                ...
    """
    method.__encore_checks_own_arguments__ = True  # type: ignore[attr-defined]
    return method


def _install_checks(cls: type) -> None:
    """Wrap the API methods ``cls`` gets from itself or from plain mixins.

    A method found in a store class further up the hierarchy was wrapped
    when that class was created; one found in ``cls`` or in a class that is
    not a store (a mixin) is wrapped now and set on ``cls``.
    """
    for name, wrap in _CHECKED_METHODS.items():
        for owner in cls.__mro__:
            if name in owner.__dict__:
                func = owner.__dict__[name]
                break
        else:
            continue
        if owner is not cls and issubclass(owner, AbstractReadOnlyStore):
            continue  # wrapped (or opted out) when ``owner`` was created
        if not callable(func) or isinstance(func, (staticmethod, classmethod, type)):
            continue
        if hasattr(func, "__encore_unchecked__") or getattr(
                func, "__encore_checks_own_arguments__", False):
            continue
        checked = wrap(func)
        checked.__encore_unchecked__ = func  # type: ignore[attr-defined]
        setattr(cls, name, checked)


def _count(items: Iterable[Any]) -> Any:
    """The number of items, for a transaction's notes (``'several'`` for an
    iterable without a length)."""
    return len(items) if isinstance(items, Sized) else "several"


def _unchecked(store: Any, name: str) -> Callable:
    """Return ``store``'s method ``name`` without the argument checks.

    The derived defaults call their primitives through this: the public
    method they serve checked the arguments already, once.  A method set on
    the instance itself (a test's stand-in, a wrapper) is called as it is.
    """
    own = getattr(store, "__dict__", None)
    if own and name in own:
        return own[name]
    method = getattr(type(store), name)
    return getattr(method, "__encore_unchecked__", method).__get__(store)


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------

class Value(abc.ABC):
    """What a store returns for a key: a data stream, metadata and times.

    Attributes
    ----------
    size : int or None
        The size of the data in bytes, ``None`` when unknown.
    created : float or None
        When the key was created, in seconds since the Unix epoch (UTC).
    modified : float or None
        When the key was last modified, in seconds since the Unix epoch.

    Notes
    -----
    For compatibility with old code a value still unpacks as a
    ``(data, metadata)`` pair (``data, metadata = store.get(key)``); this
    form is deprecated and warns.
    """

    size: Optional[int] = None
    created: Optional[float] = None
    modified: Optional[float] = None

    @property
    @abc.abstractmethod
    def data(self) -> DataStream:
        """file-like : A readable stream of the data, from its start.

        Each access returns a new stream; the caller closes it.
        """

    @property
    @abc.abstractmethod
    def metadata(self) -> Dict[str, Any]:
        """dict : A copy of the metadata; changing it changes nothing stored."""

    @property
    def permissions(self) -> Dict[str, Any]:
        """dict : The permissions of the key, for its owners.

        Raises
        ------
        AuthorizationError
            If the user may not see the permissions; the default, since
            most stores have no permissions.
        """
        raise AuthorizationError("this value has no permissions information")

    def range(self, start: Optional[int] = None, end: Optional[int] = None) -> DataStream:
        """Return a stream over part of the data.

        The default opens :attr:`data` and skips to ``start`` (seeking when
        the stream can); values that can fetch a range directly override it.

        Parameters
        ----------
        start : int, optional
            The offset of the first byte (default 0); negative offsets count
            from the end and need a known :attr:`size`.
        end : int, optional
            The offset just past the last byte (default: the end of the
            data).  The range is ``data[start:end]``, as for a slice.

        Returns
        -------
        file-like
            A readable stream; the caller closes it.
        """
        return range_stream(self.data, start, end, self.size)

    def iterdata(self, buffer_size: int = DEFAULT_BUFFER_SIZE, progress: Optional[Callable] = None) -> Iterator[bytes]:
        """Iterate over the data in buffers.

        Parameters
        ----------
        buffer_size : int, optional
            The number of bytes per buffer (default 1 MiB).
        progress : callable, optional
            Called as ``progress(step=n)`` with the bytes read so far.

        Yields
        ------
        bytes
            The successive buffers.
        """
        stream = self.data
        try:
            for chunk in buffer_iterator(stream, buffer_size, progress):
                yield chunk
        finally:
            stream.close()

    def __enter__(self) -> DataStream:
        stream = self.data
        self.__dict__.setdefault("_open_streams", []).append(stream)
        return stream

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        streams = self.__dict__.get("_open_streams")
        if streams:
            streams.pop().close()

    def __len__(self) -> int:
        return 2

    def __iter__(self) -> Iterator[Any]:
        # Unpacking (``data, metadata = value``) goes through here: one
        # warning per unpacking rather than one per item.
        warnings.warn(
            "Unpacking a Value as a (data, metadata) pair is deprecated; use "
            "value.data and value.metadata",
            DeprecationWarning,
            stacklevel=2,
        )
        yield self.data
        yield self.metadata

    def __getitem__(self, index: int) -> Any:
        warnings.warn(
            "Unpacking a Value as a (data, metadata) pair is deprecated; use "
            "value.data and value.metadata",
            DeprecationWarning,
            stacklevel=2,
        )
        if index == 0 or index == -2:
            return self.data
        if index == 1 or index == -1:
            return self.metadata
        raise IndexError("a Value has two items: data and metadata")


class ValueParts(NamedTuple):
    """A value given to ``set``, unpacked (see :func:`value_parts`)."""

    #: file-like : The data stream.
    data: ReadableStream
    #: dict : The metadata, a private copy the store may keep.
    metadata: Dict[str, Any]
    #: int or None : The size of the data in bytes, ``None`` when unknown.
    size: Optional[int]
    #: bool : Whether ``data`` was opened here (from a :class:`Value`), so
    #: that the caller must close it; a stream given in a tuple belongs to
    #: the caller of ``set``.
    opened: bool


def value_parts(value: Any) -> ValueParts:
    """Unpack a value as a store's ``set`` receives it.

    This is the one place where a :class:`Value` or a ``(data, metadata)``
    pair is taken apart; every ``set`` and ``multiset`` implementation uses
    it.

    Parameters
    ----------
    value : Value or (file-like, dict) tuple
        A value that passed the argument checks of ``set``: a tuple's
        metadata is then a private copy already.

    Returns
    -------
    ValueParts
        ``(data, metadata, size, opened)``.  For a :class:`Value`, ``data``
        is a new stream from :attr:`Value.data` (``opened`` is ``True``: close
        it when done), ``metadata`` a checked copy of its metadata and
        ``size`` its size when that is a non-negative ``int``.
    """
    if type(value) is tuple:
        return ValueParts(value[0], value[1], None, False)
    metadata = check_metadata(value.metadata)
    size = getattr(value, "size", None)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        size = None
    return ValueParts(value.data, metadata, size, True)


# ---------------------------------------------------------------------------
# Stores
# ---------------------------------------------------------------------------

class AbstractReadOnlyStore(abc.ABC):
    """The read-only key-value store API.

    Subclasses implement :meth:`get` and :meth:`query`; every other method
    has a working default built on them.

    Argument checking
    -----------------
    The methods of the API check their arguments before the store's code
    runs, whichever class defines them: when a store class is created
    (:meth:`__init_subclass__`), each API method it defines or inherits from
    a plain mixin class is wrapped in a check of its arguments.  A store
    author therefore writes the methods for valid arguments only, and every
    store raises the same ``TypeError``/``ValueError`` for bad ones, before
    anything is written.  What the implementation receives:

    * ``key`` -- a ``str`` (:func:`check_key`);
    * ``metadata`` (``set_metadata``, ``update_metadata``) -- a private deep
      copy that the store may keep, JSON-representable, tuples turned into
      lists (:func:`check_metadata`);
    * ``value`` (``set``) -- a ``(data, metadata)`` tuple whose metadata is
      such a private copy, or a :class:`Value` (unpack it with
      :func:`value_parts`);
    * ``data`` (``set_data``) -- an object with a ``read`` method, not a
      text stream nor ``bytes`` (:func:`check_data`); ``from_bytes`` gets
      bytes-like data;
    * ``keys`` and their items (``multiset``, ``multiset_data``,
      ``multiset_metadata``, ``multiupdate_metadata``) -- two lists of equal
      length, each item checked as above, all before the first write;
    * ``select`` (``get_metadata``, ``query``) -- ``None`` or an iterable of
      names that is not a string;
    * ``start``/``end`` (``get_data_range``) -- ``int`` or ``None``;
      ``path`` (``from_file``, ``to_file``) -- ``str``, ``bytes`` or
      :class:`os.PathLike`; ``pattern`` (``glob``) -- a ``str``.

    Each argument is checked once per public call: the derived defaults of
    the base classes (``set`` calling ``set_metadata`` and ``set_data``,
    ``multiset`` calling ``set``, ...) call the store's own implementations
    without the checks again.  A method that checks its own arguments is
    decorated with :func:`checks_own_arguments` and left unwrapped.

    Parameters
    ----------
    event_manager : BaseEventManager, optional
        Where the store emits its events; defaults to the package-wide
        manager (:func:`encore.events.api.get_event_manager`).  The
        :attr:`event_manager` attribute may be reassigned later.
    """

    _connected = False
    _transaction = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap the API methods of a new store class in argument checks.

        See "Argument checking" in the class documentation.
        """
        super().__init_subclass__(**kwargs)
        _install_checks(cls)

    def __init__(self, event_manager: Optional["BaseEventManager"] = None) -> None:
        # A subclass may have assigned event_manager before calling us.
        if event_manager is not None or "_event_manager" not in self.__dict__:
            self.__dict__["_event_manager"] = event_manager
        self._connected = False
        self._transaction = None

    @property
    def event_manager(self) -> "BaseEventManager":
        """BaseEventManager : Where this store emits its events."""
        manager = self.__dict__.get("_event_manager")
        if manager is None:
            from encore.events.package_globals import get_event_manager

            manager = get_event_manager()
            self.__dict__["_event_manager"] = manager
        return manager

    @event_manager.setter
    def event_manager(self, manager: "BaseEventManager") -> None:
        self.__dict__["_event_manager"] = manager

    # -- connection ----------------------------------------------------------

    def connect(self, credentials: Any = None) -> None:
        """Connect to the store, acquiring what it needs.

        Parameters
        ----------
        credentials : object, optional
            Store-specific credentials; unused by default.

        Raises
        ------
        AuthorizationError
            If the credentials are not valid.
        """
        self._connected = True

    def disconnect(self) -> None:
        """Disconnect from the store, releasing what it holds."""
        self._connected = False

    def is_connected(self) -> bool:
        """Whether the store is connected.

        Returns
        -------
        bool
            ``True`` between :meth:`connect` and :meth:`disconnect`.
        """
        return self._connected

    def info(self) -> Dict[str, Any]:
        """Describe the store.

        Returns
        -------
        dict
            At least ``'readonly'`` and ``'authorizing'`` (booleans).
        """
        return {"readonly": True, "authorizing": False}

    # -- the abstract core ---------------------------------------------------

    @abc.abstractmethod
    def get(self, key: str) -> Value:
        """Return the value of a key.

        Parameters
        ----------
        key : str
            The key.

        Returns
        -------
        Value
            Gives access to the data, metadata, size and times of the key.

        Raises
        ------
        KeyError
            If the key is not in the store.
        """

    @abc.abstractmethod
    def query(self, select: Optional[Iterable[str]] = None, **kwargs: Any) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """Find the keys whose metadata match the given values.

        Parameters
        ----------
        select : iterable of str, optional
            The metadata names to return; ``None`` (the default) returns the
            whole metadata.  Selected names a key lacks are left out.
        **kwargs
            Metadata names and the values they must equal.  With no
            arguments every key matches.

        Returns
        -------
        iterator of (str, dict)
            The matching keys with their (selected) metadata.
        """

    # -- derived reads -------------------------------------------------------

    def get_data(self, key: str) -> DataStream:
        """Return the data of a key as a readable stream.

        Parameters
        ----------
        key : str
            The key.

        Returns
        -------
        file-like
            A stream from the start of the data; the caller closes it.

        Raises
        ------
        KeyError
            If the key is not in the store.
        """
        return _unchecked(self, "get")(key).data

    def get_data_range(self, key: str, start: Optional[int] = None, end: Optional[int] = None) -> DataStream:
        """Return part of the data of a key as a readable stream.

        Parameters
        ----------
        key : str
            The key.
        start : int, optional
            The offset of the first byte (default 0).
        end : int, optional
            The offset just past the last byte (default: the end).  The
            stream holds ``data[start:end]``, as for a slice.

        Returns
        -------
        file-like
            A readable stream; the caller closes it.

        Raises
        ------
        KeyError
            If the key is not in the store.
        """
        return _unchecked(self, "get")(key).range(start, end)

    def get_metadata(self, key: str, select: Optional[Iterable[str]] = None) -> Dict[str, Any]:
        """Return the metadata of a key.

        Parameters
        ----------
        key : str
            The key.
        select : iterable of str, optional
            The names wanted; names the key lacks are left out.  ``None``
            (the default) returns everything.

        Returns
        -------
        dict
            An independent copy.

        Raises
        ------
        KeyError
            If the key is not in the store.
        """
        metadata = _unchecked(self, "get")(key).metadata
        if select is None:
            return metadata
        return {name: metadata[name] for name in select if name in metadata}

    def exists(self, key: str) -> bool:
        """Whether a key is in the store.

        Parameters
        ----------
        key : str
            The key.

        Returns
        -------
        bool
            ``True`` if the key exists.
        """
        try:
            _unchecked(self, "get")(key)
        except KeyError:
            return False
        return True

    def multiget(self, keys: Iterable[str]) -> Iterator[Value]:
        """Return the values of several keys, lazily.

        Parameters
        ----------
        keys : iterable of str
            The keys; any iterable, consumed as the result is.

        Returns
        -------
        iterator of Value
            The values in the order of ``keys``.

        Raises
        ------
        KeyError
            When iteration reaches a key that is not in the store.
        """
        return (self.get(key) for key in keys)

    def multiget_data(self, keys: Iterable[str]) -> Iterator[DataStream]:
        """Return the data streams of several keys, lazily.

        Parameters
        ----------
        keys : iterable of str
            The keys.

        Returns
        -------
        iterator of file-like
            One stream per key, in order.

        Raises
        ------
        KeyError
            When iteration reaches a key that is not in the store.
        """
        return (self.get_data(key) for key in keys)

    def multiget_metadata(self, keys: Iterable[str], select: Optional[Iterable[str]] = None) -> Iterator[Dict[str, Any]]:
        """Return the metadata of several keys, lazily.

        Parameters
        ----------
        keys : iterable of str
            The keys.
        select : iterable of str, optional
            The names wanted (see :meth:`get_metadata`).

        Returns
        -------
        iterator of dict
            One dictionary per key, in order.

        Raises
        ------
        KeyError
            When iteration reaches a key that is not in the store.
        """
        select = _check_select(select)
        if select is not None:
            select = list(select)
        return (self.get_metadata(key, select) for key in keys)

    def query_keys(self, **kwargs: Any) -> Iterator[str]:
        """Find the keys whose metadata match the given values.

        Parameters
        ----------
        **kwargs
            Metadata names and the values they must equal; with none, every
            key in the store.

        Returns
        -------
        iterator of str
            The matching keys.
        """
        return (key for key, _ in _unchecked(self, "query")(select=(), **kwargs))

    def glob(self, pattern: str) -> Iterator[str]:
        """Find the keys matching a shell-style pattern.

        Parameters
        ----------
        pattern : str
            A pattern for :func:`fnmatch.fnmatchcase` (``*``, ``?``,
            ``[seq]``); matching is case-sensitive.

        Returns
        -------
        iterator of str
            The matching keys.
        """
        match = fnmatch.fnmatchcase
        return (key for key in self.query_keys() if match(key, pattern))

    def to_file(self, key: str, path: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Copy the data of a key into a file.

        Parameters
        ----------
        key : str
            The key.
        path : str or os.PathLike
            The file to write; replaced if it exists, only once the whole
            value was read (through a temporary file beside it): on any
            error an existing file is left as it was.
        buffer_size : int, optional
            The number of bytes copied at a time (default 1 MiB).

        Raises
        ------
        KeyError
            If the key is not in the store; no file is created then.

        Events
        ------
        StoreProgressStartEvent, StoreProgressStepEvent, StoreProgressEndEvent
            When anyone listens: ``steps`` is the size in bytes (``-1`` when
            unknown) and each step gives the bytes written so far.
        """
        if progress_is_listened(self.event_manager):
            value = _unchecked(self, "get")(key)
            stream = value.data
            metadata, size = value.metadata, value.size
        else:
            stream = _unchecked(self, "get_data")(key)
            metadata, size = None, None
        try:
            with replacing(path) as target:
                progress = store_progress(
                    self, key, metadata, "Copying {} to a file".format(key),
                    -1 if size is None else size)
                with progress:
                    copy_stream(stream, target.write, buffer_size, progress.step)
        finally:
            stream.close()

    def to_bytes(self, key: str, buffer_size: int = DEFAULT_BUFFER_SIZE) -> bytes:
        """Return the data of a key as bytes.

        Parameters
        ----------
        key : str
            The key.
        buffer_size : int, optional
            The number of bytes read at a time (default 1 MiB).

        Returns
        -------
        bytes
            The whole data.

        Raises
        ------
        KeyError
            If the key is not in the store.
        """
        stream = _unchecked(self, "get_data")(key)
        try:
            return b"".join(buffer_iterator(stream, buffer_size))
        finally:
            stream.close()

    # -- helpers for implementations ----------------------------------------

    def _emit_modification(self, event_class: type, key: str, metadata: Optional[Dict[str, Any]]) -> None:
        """Emit a modification event about a key, if anyone listens.

        Every modification event of a store goes through here.  While an
        :class:`~encore.storage.utils.EventHold` of this store is open on
        the calling thread (a transaction, a derived ``set``, a composite's
        write), the event is added to it instead, to be emitted when the
        hold's owner is done.

        Parameters
        ----------
        event_class : type
            :class:`~encore.storage.events.StoreSetEvent`,
            :class:`~encore.storage.events.StoreUpdateEvent` or
            :class:`~encore.storage.events.StoreDeleteEvent`.
        key : str
            The key modified.
        metadata : dict or None
            The key's metadata after the change (before it, for a delete).
        """
        if _holds.stack:  # (a list per thread: cheap to ask on every write)
            hold = event_hold(self, event_class, key)
            if hold is not None:
                # A merging hold needs every part; any other holds only
                # what someone would receive.
                if hold.key is not None or is_listened(self.event_manager, event_class):
                    hold.add(event_class, key, metadata)
                return
        manager = self.event_manager
        if is_listened(manager, event_class):
            # The store may keep the dict it was given: listeners get a copy.
            if metadata is not None:
                metadata = copy_metadata(metadata)
            manager.emit(event_class(source=self, key=key, metadata=metadata))


_install_checks(AbstractReadOnlyStore)


class AbstractStore(AbstractReadOnlyStore):
    """The read-write key-value store API.

    On top of :class:`AbstractReadOnlyStore`'s core, subclasses implement
    :meth:`set_data`, :meth:`set_metadata` and :meth:`delete`.  A store that
    can roll back defines ``_begin_transaction``, ``_commit_transaction`` and
    ``_rollback_transaction``, which the default :meth:`transaction` calls.

    The metadata a subclass's ``set``, ``set_metadata`` and
    ``update_metadata`` receive has already been checked and is a private
    copy, which the store may keep.
    """

    def info(self) -> Dict[str, Any]:
        """Describe the store.

        Returns
        -------
        dict
            At least ``'readonly'`` (``False``) and ``'authorizing'``.
        """
        return {"readonly": False, "authorizing": False}

    # -- the abstract core ---------------------------------------------------

    @abc.abstractmethod
    def set_data(self, key: str, data: ReadableStream, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Replace the data of a key, keeping its metadata.

        Parameters
        ----------
        key : str
            The key; created with empty metadata if it does not exist.
        data : file-like
            A readable binary stream, read in buffers until exhausted.
        buffer_size : int, optional
            The number of bytes read at a time (default 1 MiB).

        Raises
        ------
        TypeError
            If ``data`` is not a readable binary stream.

        Events
        ------
        StoreSetEvent or StoreUpdateEvent
            After the write (after the transaction, inside one).
        StoreProgressStartEvent, StoreProgressStepEvent, StoreProgressEndEvent
            While the data is copied, when anyone listens.
        """

    @abc.abstractmethod
    def set_metadata(self, key: str, metadata: Dict[str, Any]) -> None:
        """Replace the metadata of a key, keeping its data.

        Parameters
        ----------
        key : str
            The key; created with empty data if it does not exist.
        metadata : dict
            The new metadata (JSON-representable, ``str`` keys).

        Raises
        ------
        TypeError, ValueError
            If the metadata cannot be stored.

        Events
        ------
        StoreSetEvent or StoreUpdateEvent
            After the write.
        """

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete a key.

        Parameters
        ----------
        key : str
            The key.

        Raises
        ------
        KeyError
            If the key is not in the store.

        Events
        ------
        StoreDeleteEvent
            With the metadata the key had.
        """

    # -- derived writes ------------------------------------------------------

    def set(self, key: str, value: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Set the data and metadata of a key.

        Parameters
        ----------
        key : str
            The key; replaced if it exists.
        value : Value or (file-like, dict) tuple
            The new data and metadata.
        buffer_size : int, optional
            The number of bytes read at a time (default 1 MiB).

        Raises
        ------
        TypeError, ValueError
            If the value's parts have the wrong types.

        Events
        ------
        StoreSetEvent or StoreUpdateEvent
            One, after the write.  (This default calls :meth:`set_metadata`
            and :meth:`set_data`; the events they emit with the base
            class's helpers are merged into this one.)
        StoreProgressStartEvent, StoreProgressStepEvent, StoreProgressEndEvent
            While the data is copied, when anyone listens.
        """
        data, metadata, _, opened = value_parts(value)
        # set_metadata and set_data each report their write; their events
        # are held back and merged into one event for the whole set (a set
        # of a new key is one StoreSetEvent).
        try:
            with self.transaction("Setting {}".format(key)):
                hold = EventHold(self, key).open()
                try:
                    _unchecked(self, "set_metadata")(key, metadata)
                    _unchecked(self, "set_data")(key, data, buffer_size)
                finally:
                    held = hold.close()
                    # Also when set_data failed: a store that cannot roll
                    # back has written the metadata (inside a transaction
                    # that rolls back, the event is dropped).  The class of
                    # the first event, the metadata of the last.
                    if held:
                        self._emit_modification(held[0][0], key, held[-1][1])
        finally:
            if opened:
                cast(DataStream, data).close()

    def update_metadata(self, key: str, metadata: Dict[str, Any]) -> None:
        """Merge new values into the metadata of a key.

        Parameters
        ----------
        key : str
            The key.
        metadata : dict
            Names and values to add or replace, as :meth:`dict.update`.

        Raises
        ------
        KeyError
            If the key is not in the store.

        Events
        ------
        StoreUpdateEvent
            With the merged metadata.
        """
        with self.transaction("Updating metadata of {}".format(key)):
            merged = _unchecked(self, "get_metadata")(key)
            merged.update(metadata)
            _unchecked(self, "set_metadata")(key, merged)

    def transaction(self, notes: str) -> Any:
        """Return a context manager grouping writes into one transaction.

        Parameters
        ----------
        notes : str
            Describes the transaction (informative only).

        Returns
        -------
        context manager
            By default a :class:`~encore.storage.utils.SimpleTransactionContext`:
            nestable; commits when the outermost block ends normally, rolls
            back when it raises (for stores that can), and holds the store's
            modification events until the end.

        Events
        ------
        StoreTransactionStartEvent
            When the outermost transaction begins.
        StoreTransactionEndEvent
            When it ends, before the modification events of the writes made
            in it.
        """
        return SimpleTransactionContext(self)

    def multiset(self, keys: Iterable[str], values: Iterable[Any], buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Set the data and metadata of several keys in one transaction.

        Parameters
        ----------
        keys : iterable of str
            The keys (any iterable, generators included).
        values : iterable of Value or (file-like, dict) tuples
            The values, paired with ``keys`` as by :func:`zip`.
        buffer_size : int, optional
            The number of bytes read at a time.

        Raises
        ------
        TypeError, ValueError
            If any key or value is invalid; nothing is written then.

        Events
        ------
        StoreSetEvent or StoreUpdateEvent
            One per key, after the transaction.
        """
        with self.transaction("Setting {} keys".format(_count(keys))):
            set_value = _unchecked(self, "set")
            for key, value in zip(keys, values):
                set_value(key, value, buffer_size)

    def multiset_data(self, keys: Iterable[str], datas: Iterable[ReadableStream], buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Set the data of several keys in one transaction.

        Parameters
        ----------
        keys : iterable of str
            The keys.
        datas : iterable of file-like
            The streams, paired with ``keys`` as by :func:`zip`.
        buffer_size : int, optional
            The number of bytes read at a time.

        Raises
        ------
        TypeError
            If any key or stream is invalid; nothing is written then.

        Events
        ------
        StoreSetEvent or StoreUpdateEvent
            One per key, after the transaction.
        """
        with self.transaction("Setting data of {} keys".format(_count(keys))):
            set_data = _unchecked(self, "set_data")
            for key, data in zip(keys, datas):
                set_data(key, data, buffer_size)

    def multiset_metadata(self, keys: Iterable[str], metadatas: Iterable[Dict[str, Any]]) -> None:
        """Set the metadata of several keys in one transaction.

        Parameters
        ----------
        keys : iterable of str
            The keys.
        metadatas : iterable of dict
            The metadata, paired with ``keys`` as by :func:`zip`.

        Raises
        ------
        TypeError, ValueError
            If any key or metadata is invalid; nothing is written then.

        Events
        ------
        StoreSetEvent or StoreUpdateEvent
            One per key, after the transaction.
        """
        with self.transaction("Setting metadata of {} keys".format(_count(keys))):
            set_metadata = _unchecked(self, "set_metadata")
            for key, metadata in zip(keys, metadatas):
                set_metadata(key, metadata)

    def multiupdate_metadata(self, keys: Iterable[str], metadatas: Iterable[Dict[str, Any]]) -> None:
        """Merge new values into the metadata of several keys, in one
        transaction.

        Parameters
        ----------
        keys : iterable of str
            The keys.
        metadatas : iterable of dict
            The values to merge, paired with ``keys`` as by :func:`zip`.

        Raises
        ------
        KeyError
            If a key is not in the store (the transaction rolls back where
            the store can).

        Events
        ------
        StoreUpdateEvent
            One per key, after the transaction.
        """
        with self.transaction("Updating metadata of {} keys".format(_count(keys))):
            update_metadata = _unchecked(self, "update_metadata")
            for key, metadata in zip(keys, metadatas):
                update_metadata(key, metadata)

    def from_file(self, key: str, path: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Set the data of a key from a file, keeping its metadata.

        Parameters
        ----------
        key : str
            The key; created with empty metadata if it does not exist.
        path : str or os.PathLike
            The file to read.
        buffer_size : int, optional
            The number of bytes read at a time.

        Events
        ------
        StoreSetEvent or StoreUpdateEvent
            After the write.
        """
        with open(path, "rb") as stream:
            _unchecked(self, "set_data")(key, stream, buffer_size)

    def from_bytes(self, key: str, data: bytes, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Set the data of a key from bytes, keeping its metadata.

        Parameters
        ----------
        key : str
            The key; created with empty metadata if it does not exist.
        data : bytes
            The new data (``bytes``, ``bytearray`` or ``memoryview``).
        buffer_size : int, optional
            The number of bytes read at a time.

        Raises
        ------
        TypeError
            If ``data`` is not bytes-like (text, say).

        Events
        ------
        StoreSetEvent or StoreUpdateEvent
            After the write.
        """
        _unchecked(self, "set_data")(key, io.BytesIO(data), buffer_size)

    # -- helpers for implementations ----------------------------------------

    def _emit_write(self, key: str, existed: bool, metadata: Optional[Dict[str, Any]]) -> None:
        """Emit :class:`StoreUpdateEvent` or :class:`StoreSetEvent` for a write.

        Parameters
        ----------
        key : str
            The key written.
        existed : bool
            Whether the key existed before the write.
        metadata : dict
            The key's metadata after the write.
        """
        self._emit_modification(StoreUpdateEvent if existed else StoreSetEvent, key, metadata)

    def _emit_delete(self, key: str, metadata: Optional[Dict[str, Any]]) -> None:
        """Emit :class:`StoreDeleteEvent` for a deleted key.

        Parameters
        ----------
        key : str
            The key deleted.
        metadata : dict
            The metadata it had.
        """
        self._emit_modification(StoreDeleteEvent, key, metadata)



class AbstractAuthorizingStore(AbstractStore):
    """The key-value store API with per-key permissions.

    Permissions are names (``'owned'`` at least) each mapped to the set of
    tags -- users, groups or roles -- holding it.  Subclasses implement
    :meth:`set_permissions` and :meth:`update_permissions` on top of the
    :class:`AbstractStore` core.
    """

    def info(self) -> Dict[str, Any]:
        """Describe the store.

        Returns
        -------
        dict
            With ``'authorizing'`` ``True``.
        """
        result = super().info()
        result["authorizing"] = True
        return result

    @property
    def user_tag(self) -> str:
        """str : The tag identifying the connected user."""
        return "user"

    def get_permissions(self, key: str) -> Dict[str, Any]:
        """Return the permissions of a key.

        Parameters
        ----------
        key : str
            The key.

        Returns
        -------
        dict of str to set of str
            Each permission with the tags holding it.

        Raises
        ------
        KeyError
            If the key does not exist or the user may not see it.
        AuthorizationError
            If the user may see the key but does not own it.
        """
        return self.get(key).permissions

    @abc.abstractmethod
    def set_permissions(self, key: str, permissions: Dict[str, Any]) -> None:
        """Replace the permissions of a key the user owns.

        Parameters
        ----------
        key : str
            The key.
        permissions : dict of str to set of str
            Each permission with the tags holding it.

        Raises
        ------
        KeyError
            If the key does not exist or the user may not see it.
        AuthorizationError
            If the user does not own the key.
        """

    @abc.abstractmethod
    def update_permissions(self, key: str, permissions: Dict[str, Any]) -> None:
        """Merge permissions into those of a key the user owns.

        Parameters
        ----------
        key : str
            The key.
        permissions : dict of str to set of str
            Each permission with the tags to grant it.

        Raises
        ------
        KeyError
            If the key does not exist or the user may not see it.
        AuthorizationError
            If the user does not own the key.
        """


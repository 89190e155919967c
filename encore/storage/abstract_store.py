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
import threading
import warnings
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Tuple

from ._atomic_file import replacing
from .events import StoreDeleteEvent, StoreSetEvent, StoreUpdateEvent
from .utils import (
    DEFAULT_BUFFER_SIZE,
    SimpleTransactionContext,
    buffer_iterator,
    copy_stream,
    is_listened,
    progress_is_listened,
    range_stream,
    store_progress,
)

__all__ = [
    "StoreError",
    "AuthorizationError",
    "Value",
    "AbstractReadOnlyStore",
    "AbstractStore",
    "AbstractAuthorizingStore",
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
    raise TypeError(
        "metadata value at {} has type {}, which is not JSON-representable "
        "(use str, int, float, bool, None, list or dict)".format(path or "top level", kind.__name__)
    )


def check_metadata(metadata: Any) -> Dict[str, Any]:
    """Check that metadata is JSON-representable and return a private copy.

    Parameters
    ----------
    metadata : dict
        A dictionary with ``str`` keys whose values are ``str``, ``int``,
        finite ``float``, ``bool``, ``None``, lists (or tuples) and
        dictionaries of such values.

    Returns
    -------
    dict
        A deep copy, with tuples turned into lists (as JSON would).

    Raises
    ------
    TypeError
        If ``metadata`` is not a dict, has a non-``str`` key at any level, or
        holds a value of another type.
    ValueError
        If it holds a NaN or infinite float.
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


_CONTAINERS = frozenset({dict, list})


def copy_metadata(metadata: Dict[str, Any], _type: Any = type, _containers: Any = _CONTAINERS) -> Dict[str, Any]:
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
    # (_type and _containers are bound as defaults: this runs on every read.)
    result = metadata.copy()
    for value in result.values():
        if _type(value) in _containers:
            break
    else:
        return result  # flat: the shallow copy is independent already
    for name, value in result.items():
        kind = type(value)
        if kind is dict:
            result[name] = copy_metadata(value)
        elif kind is list:
            result[name] = _copy_list(value)
    return result


def _copy_list(values: list) -> list:
    result = list(values)
    for index, value in enumerate(result):
        kind = type(value)
        if kind is dict:
            result[index] = copy_metadata(value)
        elif kind is list:
            result[index] = _copy_list(value)
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


def check_data(data: Any) -> Any:
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
            return func(self, key, check_item(item), *args, **kwargs)
        return checked
    return wrap


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
        checked_items.append(check_item(item))
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


def _add_checks(namespace: Dict[str, Any], owner: Optional[type] = None) -> None:
    for name, wrap in _CHECKED_METHODS.items():
        func = namespace.get(name)
        if func is None or not callable(func) or isinstance(func, (staticmethod, classmethod, type)):
            continue
        if getattr(func, "__encore_checked__", False):
            continue
        checked = wrap(func)
        checked.__encore_checked__ = True
        if owner is None:
            namespace[name] = checked
        else:
            setattr(owner, name, checked)


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
    def data(self) -> Any:
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

    def range(self, start: Optional[int] = None, end: Optional[int] = None) -> Any:
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

    def __enter__(self) -> Any:
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


def _value_parts(value: Any) -> Tuple[Any, Dict[str, Any]]:
    """Return the data stream and a checked metadata copy of a value."""
    if isinstance(value, tuple):
        return value
    return value.data, check_metadata(value.metadata)


# ---------------------------------------------------------------------------
# Stores
# ---------------------------------------------------------------------------

class AbstractReadOnlyStore(abc.ABC):
    """The read-only key-value store API.

    Subclasses implement :meth:`get` and :meth:`query`; every other method
    has a working default built on them.

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
        super().__init_subclass__(**kwargs)
        _add_checks(dict(cls.__dict__), owner=cls)

    def __init__(self, event_manager: Any = None) -> None:
        # A subclass may have assigned event_manager before calling us.
        if event_manager is not None or "_event_manager" not in self.__dict__:
            self.__dict__["_event_manager"] = event_manager
        self._connected = False
        self._transaction = None

    @property
    def event_manager(self) -> Any:
        """BaseEventManager : Where this store emits its events."""
        manager = self.__dict__.get("_event_manager")
        if manager is None:
            from encore.events.package_globals import get_event_manager

            manager = get_event_manager()
            self.__dict__["_event_manager"] = manager
        return manager

    @event_manager.setter
    def event_manager(self, manager: Any) -> None:
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

    def get_data(self, key: str) -> Any:
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
        return self.get(key).data

    def get_data_range(self, key: str, start: Optional[int] = None, end: Optional[int] = None) -> Any:
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
        return self.get(key).range(start, end)

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
        metadata = self.get(key).metadata
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
            self.get(key)
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

    def multiget_data(self, keys: Iterable[str]) -> Iterator[Any]:
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
        return (key for key, _ in self.query(select=(), **kwargs))

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
            value = self.get(key)
            stream = value.data
            metadata, size = value.metadata, value.size
        else:
            stream = self.get_data(key)
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
        stream = self.get_data(key)
        try:
            return b"".join(buffer_iterator(stream, buffer_size))
        finally:
            stream.close()

    # -- helpers for implementations ----------------------------------------

    def _emit_modification(self, event_class: type, key: str, metadata: Optional[Dict[str, Any]]) -> None:
        """Emit a modification event about a key, if anyone listens.

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
        held = getattr(_holding, "stack", None)
        if held and event_class is not StoreDeleteEvent:
            store, held_key, events = held[-1]
            if store is self and held_key == key:
                events.append((event_class, metadata))
                return
        manager = self.event_manager
        if is_listened(manager, event_class):
            # The store may keep the dict it was given: listeners get a copy.
            if metadata is not None:
                metadata = copy_metadata(metadata)
            manager.emit(event_class(source=self, key=key, metadata=metadata))


# Per thread: the (store, key, list) of the derived AbstractStore.set calls
# in progress, whose parts' modification events are held back.
_holding = threading.local()


def _held_modifications() -> list:
    stack = getattr(_holding, "stack", None)
    if stack is None:
        stack = _holding.stack = []
    return stack


_add_checks(AbstractReadOnlyStore.__dict__, owner=AbstractReadOnlyStore)


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
    def set_data(self, key: str, data: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
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
        data, metadata = _value_parts(value)
        # set_metadata and set_data each report their write; the events they
        # emit through _emit_modification are held back and replaced by one
        # event for the whole set (a set of a new key is one StoreSetEvent).
        held: list = []
        stack = _held_modifications()
        try:
            with self.transaction("Setting {}".format(key)):
                stack.append((self, key, held))
                try:
                    self.set_metadata(key, metadata)
                    self.set_data(key, data, buffer_size)
                finally:
                    for index in range(len(stack) - 1, -1, -1):
                        if stack[index][2] is held:
                            del stack[index]
                            break
                    # Also when set_data failed: a store that cannot roll
                    # back has written the metadata (inside a transaction
                    # that rolls back, the event is dropped).
                    if held:
                        self._emit_modification(held[0][0], key, held[-1][1])
        finally:
            if not isinstance(value, tuple):
                data.close()  # the stream was opened here, from the Value

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
            merged = self.get_metadata(key)
            merged.update(metadata)
            self.set_metadata(key, merged)

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
        with self.transaction("Setting {} keys".format(len(keys))):
            for key, value in zip(keys, values):
                self.set(key, value, buffer_size)

    def multiset_data(self, keys: Iterable[str], datas: Iterable[Any], buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
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
        with self.transaction("Setting data of {} keys".format(len(keys))):
            for key, data in zip(keys, datas):
                self.set_data(key, data, buffer_size)

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
        with self.transaction("Setting metadata of {} keys".format(len(keys))):
            for key, metadata in zip(keys, metadatas):
                self.set_metadata(key, metadata)

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
        with self.transaction("Updating metadata of {} keys".format(len(keys))):
            for key, metadata in zip(keys, metadatas):
                self.update_metadata(key, metadata)

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
            self.set_data(key, stream, buffer_size)

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
        self.set_data(key, io.BytesIO(data), buffer_size)

    # -- helpers for implementations ----------------------------------------

    def _emit_write(self, key: str, existed: bool, metadata: Dict[str, Any]) -> None:
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

    def _emit_delete(self, key: str, metadata: Dict[str, Any]) -> None:
        """Emit :class:`StoreDeleteEvent` for a deleted key.

        Parameters
        ----------
        key : str
            The key deleted.
        metadata : dict
            The metadata it had.
        """
        self._emit_modification(StoreDeleteEvent, key, metadata)


_add_checks(AbstractStore.__dict__, owner=AbstractStore)


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


_add_checks(AbstractAuthorizingStore.__dict__, owner=AbstractAuthorizingStore)

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

import functools
import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from .abstract_store import (
    AbstractAuthorizingStore,
    AuthorizationError,
    StoreError,
    Value,
)
from .utils import UserTag
from ._composite import _CompositeStore, _is_writable, _unshadowed

if TYPE_CHECKING:
    from encore.events.abstract_event_manager import BaseEventManager

logger = logging.getLogger(__name__)

__all__ = ["JoinedStore"]


def _held_by_any(stores: List[Any], key: str) -> bool:
    return any(store.exists(key) for store in stores)



class JoinedStore(_CompositeStore, AbstractAuthorizingStore):
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

    def __init__(self, stores: Iterable[Any], event_manager: Optional["BaseEventManager"] = None) -> None:
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

    def _source(self, key: str) -> Tuple[Any, str]:
        """Read ``key`` from the first store holding it.

        Every store but the last is probed with ``exists`` (a miss there is
        much cheaper than a failing ``get``); the last is returned without a
        probe, so that its own read raises ``KeyError`` when it lacks the
        key too.
        """
        stores = self.stores
        for store in stores[:-1]:
            if store.exists(key):
                return store, key
        if stores:
            return stores[-1], key
        raise KeyError(key)

    # The routing hooks of the composite machinery (see _CompositeStore).

    def _write_target(self, key: str) -> Tuple[Any, str]:
        return self._writable_first(), key

    def _lower_copy(self, key: str) -> Optional[Tuple[Any, str]]:
        for store in self.stores[1:]:
            if store.exists(key):
                return store, key
        return None

    def _copies(self, key: str) -> List[Tuple[Any, str]]:
        return [(store, key) for store in self.stores if store.exists(key)]

    def _info_writer(self) -> Any:
        return self.stores[0] if self.stores else None

    def _info_details(self) -> Dict[str, Any]:
        return {
            "authorizing": any(isinstance(store, AbstractAuthorizingStore) for store in self.stores),
            "stores": len(self.stores),
        }

    # -- reads ---------------------------------------------------------------

    def get(self, key: str) -> Value:
        """Return the value of a key from the first store holding it (the
        stores before it are probed with ``exists``)."""
        # The loop of _source, inlined on this hot path.
        stores = self.stores
        for store in stores[:-1]:
            if store.exists(key):
                return store.get(key)
        if stores:
            return stores[-1].get(key)
        raise KeyError(key)

    def exists(self, key: str) -> bool:
        """Whether any of the stores holds a key.

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
        the copy that shadows it does not match.  The keys come store by
        store.

        Parameters
        ----------
        select : iterable of str, optional
            The metadata names to return (``None``: all).
        """
        if select is not None:
            select = list(select)
        return self._joined(lambda store: store.query(select, **kwargs), bool(kwargs), True)

    def query_keys(self, **kwargs: Any) -> Iterator[str]:
        """Find the keys whose metadata match (see :meth:`query`); with no
        condition, every key of every store, once."""
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
        stores = list(self.stores)
        # A filter may have left out the copy that shadows a key: then ask
        # the earlier stores whether they hold it.
        listings = (
            (listing(store), functools.partial(_held_by_any, stores[:index]) if filtered and index else None)
            for index, store in enumerate(stores)
        )
        return _unshadowed(listings, pairs)

    # -- permissions ---------------------------------------------------------

    @property
    def user_tag(self) -> str:
        """str : The user tag of the first authorizing store (``'user'`` if none).

        Encore 0.8 made this a method; the string returned can be called
        too (``joined.user_tag()`` returns the same tag), so code written
        either way works.
        """
        for store in self.stores:
            if isinstance(store, AbstractAuthorizingStore) or hasattr(store, "user_tag"):
                tag = store.user_tag
                return UserTag(tag() if callable(tag) else tag)
        return UserTag("user")

    def _permission_holder(self, key: str) -> Any:
        for store in self.stores:
            if store.exists(key):
                return store
        raise KeyError(key)

    def get_permissions(self, key: str) -> Dict[str, Any]:
        """Return the permissions of a key, from the first store holding it.

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

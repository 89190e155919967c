"""A store mounting one store at a key prefix of another.

:class:`MountedStore` is like mounting a file system: the keys of the
*mount store* appear in the *backing store*'s key space under a prefix, the
*mount point*, where they hide (*shadow*) the backing store's own keys of the
same name.  The main use is a local cache of part of a remote store::

    remote = StaticURLStore(...)          # read-only
    cache = SqliteStore("cache.db")
    store = MountedStore("projects/alpha/", cache, remote)
    store.connect()
    store.update_metadata("projects/alpha/plan", {"seen": True})  # into cache
    store.push("projects/alpha/plan")     # when the backing store is writable

The key ``mount_point + k`` of the view is the key ``k`` of the mount store;
every other key is the backing store's key of the same name.

Routing
-------

Reads
    Under the mount point: the mount store's copy if it has one (probed
    with ``exists``), else the backing store's; elsewhere: the backing
    store.
Queries and ``glob``
    The mount store's matches (prefixed), then the backing store's matches
    that no mount copy shadows: no key twice, and no shadowed backing copy
    even when the mount copy does not match.
``set``
    The mount store.
``set_data``, ``set_metadata``, ``update_metadata``
    The mount store; a key that only the backing store holds is first
    copied into the mount store (copy-on-write, streamed), then modified.
``delete``
    Every copy: the mount store's and the backing store's, so that the key
    disappears from the view.
``push``
    Moves the mount store's copy down into the backing store.
Writes outside the mount point
    Refused with ``KeyError``, as in Encore: through the view the backing
    store is read-only outside the mount point.
"""
from __future__ import annotations

import fnmatch
import logging
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Optional, Tuple

from .abstract_store import AbstractStore, StoreError, Value
from ._composite import _CompositeStore, _copy_data, _is_writable, _unshadowed

if TYPE_CHECKING:
    from encore.events.abstract_event_manager import BaseEventManager

logger = logging.getLogger(__name__)

__all__ = ["MountedStore"]

_GLOB_SPECIALS = frozenset("*?[")


class MountedStore(_CompositeStore, AbstractStore):
    """A store mounting ``mount_store`` at ``mount_point`` in ``backing_store``.

    Parameters
    ----------
    mount_point : str
        The key prefix where the mount store appears.  A key is under the
        mount point when it starts with this string (``''`` mounts the
        mount store over the whole key space).
    mount_store : AbstractStore
        The store mounted; it receives the writes.
    backing_store : AbstractReadOnlyStore
        The store mounted upon.  The view only writes to it in
        :meth:`push` and :meth:`delete`.
    event_manager : BaseEventManager, optional
        Where the mounted store emits its events (default: the package-wide
        manager).

    Attributes
    ----------
    mount_point : str
        The key prefix.
    mount_store, backing_store : store
        The two stores.
    """

    def __init__(self, mount_point: str, mount_store: Any, backing_store: Any,
                 event_manager: Optional["BaseEventManager"] = None) -> None:
        super().__init__(event_manager=event_manager)
        if not isinstance(mount_point, str):
            raise TypeError("mount_point must be a str, not {}".format(type(mount_point).__name__))
        self.mount_point = mount_point
        self.mount_store = mount_store
        self.backing_store = backing_store

    @property
    def stores(self) -> List[Any]:
        """list : ``[mount_store, backing_store]``."""
        return [self.mount_store, self.backing_store]

    def _children(self) -> List[Any]:
        return self.stores

    def _short(self, key: str) -> Optional[str]:
        """The mount store's key for ``key``, or ``None`` outside the mount."""
        prefix = self.mount_point
        if key.startswith(prefix):
            return key[len(prefix):]
        return None

    def _mounted(self, key: str) -> str:
        short = self._short(key)
        if short is None:
            raise KeyError(key)
        return short

    def _source(self, key: str) -> Tuple[Any, str]:
        """Read ``key`` from the mount copy if there is one, else from the
        backing store."""
        if self._shadowed(key):
            return self.mount_store, key[len(self.mount_point):]
        return self.backing_store, key

    def _shadowed(self, key: str) -> bool:
        """Whether a mount copy hides the backing store's ``key``."""
        short = self._short(key)
        return short is not None and self.mount_store.exists(short)

    # The routing hooks of the composite machinery (see _CompositeStore).

    def _write_target(self, key: str) -> Tuple[Any, str]:
        return self.mount_store, self._mounted(key)

    def _lower_copy(self, key: str) -> Optional[Tuple[Any, str]]:
        return (self.backing_store, key) if self.backing_store.exists(key) else None

    def _copies(self, key: str) -> List[Tuple[Any, str]]:
        short = self._mounted(key)
        copies = [(self.mount_store, short)] if self.mount_store.exists(short) else []
        if self.backing_store.exists(key):
            copies.append((self.backing_store, key))
        return copies

    def _info_writer(self) -> Any:
        return self.mount_store

    def _info_details(self) -> Dict[str, Any]:
        return {"mount_point": self.mount_point}

    # -- reads ---------------------------------------------------------------

    def get(self, key: str) -> Value:
        """Return the value of a key: the mount copy first, else the
        backing store's."""
        prefix = self.mount_point  # _short, inlined on this hot path
        if key.startswith(prefix):
            mount = self.mount_store
            short = key[len(prefix):]
            if mount.exists(short):
                return mount.get(short)
        return self.backing_store.get(key)

    def exists(self, key: str) -> bool:
        """Whether the view holds a key.

        Returns
        -------
        bool
            ``True`` if the mount store (under the mount point) or the
            backing store holds it.
        """
        return self._shadowed(key) or self.backing_store.exists(key)

    def query(self, select: Optional[Iterable[str]] = None, **kwargs: Any) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """Find the keys whose metadata match.

        The mount store's matches come first, then the backing store's
        matches not shadowed by a mount copy.

        Parameters
        ----------
        select : iterable of str, optional
            The metadata names to return.
        """
        if select is not None:
            select = list(select)
        prefix = self.mount_point
        mounted = ((prefix + short, metadata)
                   for short, metadata in self.mount_store.query(select, **kwargs))
        backing = self.backing_store.query(select, **kwargs)
        return self._merge(mounted, backing, bool(kwargs), True)

    def query_keys(self, **kwargs: Any) -> Iterator[str]:
        """Find the keys whose metadata match (see :meth:`query`)."""
        prefix = self.mount_point
        mounted = (prefix + short for short in self.mount_store.query_keys(**kwargs))
        backing = self.backing_store.query_keys(**kwargs)
        return self._merge(mounted, backing, bool(kwargs), False)

    def glob(self, pattern: str) -> Iterator[str]:
        """Find the keys matching a shell-style pattern.

        Parameters
        ----------
        pattern : str
            A pattern for :func:`fnmatch.fnmatchcase`, applied to the keys
            of the view.
        """
        prefix = self.mount_point
        if pattern.startswith(prefix) and not (_GLOB_SPECIALS & set(prefix)):
            # The prefix part of the pattern is literal: let the mount store
            # match the rest against its own keys.
            mounted: Iterable[str] = (
                prefix + short for short in self.mount_store.glob(pattern[len(prefix):]))
        else:
            match = fnmatch.fnmatchcase
            mounted = (key for key in (prefix + short for short in self.mount_store.query_keys())
                       if match(key, pattern))
        # A mount copy shadowing a matching backing key matched too.
        return self._merge(mounted, self.backing_store.glob(pattern), False, False)

    def _merge(self, mounted: Iterable[Any], backing: Iterable[Any], filtered: bool, pairs: bool) -> Iterator[Any]:
        # A filter may have left out the mount copy shadowing a backing key.
        hidden = self._shadowed if filtered else None
        return _unshadowed([(mounted, None), (backing, hidden)], pairs)

    # -- writes --------------------------------------------------------------

    def push(self, key: str) -> None:
        """Move a key from the mount store down to the backing store.

        The mount store's data (streamed) and metadata replace the backing
        store's copy, then the mount copy is deleted, in one transaction.
        The view shows the same data and metadata before and after, so the
        mounted store emits no modification event (the children emit
        theirs).

        Parameters
        ----------
        key : str
            The key; it must start with the mount point.

        Raises
        ------
        KeyError
            If the key is outside the mount point or not in the mount store.
        StoreError
            If the backing store is read-only.
        """
        short = self._mounted(key)
        mount, backing = self.mount_store, self.backing_store
        if not _is_writable(backing):
            raise StoreError("cannot push {!r}: the backing store is read-only".format(key))
        with self._write_scope(hold_events=False) as scope:
            metadata = mount.get_metadata(short)
            scope.will_write(backing, mount)
            _copy_data((mount, short), backing, key, metadata)
            mount.delete(short)

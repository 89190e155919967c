"""A wrapper adding username/password authentication to any store.

:class:`SimpleAuthStore` wraps a store that knows nothing of users.  A user
connects with a username and a password; the password is encoded by an
*encoder* (a salted hash) and compared with the user's record, a key named
``user_key_path + username`` whose data is the encoded password.  Every
operation then asks :meth:`SimpleAuthStore.check_permissions` for the
permission it needs (``'exists'``, ``'get'``, ``'set'``, ``'delete'``); by
default an authenticated user has them all, and subclasses refine this.

Creating users and choosing an encoder::

    import os
    salt = os.urandom(16)                       # keep it, with the records
    encoder = make_pbkdf2_encoder(salt)         # recommended
    create_user_record(backend, "alice", "s3cret", encoder)

    store = SimpleAuthStore(backend, encoder)
    store.connect({"username": "alice", "password": "s3cret"})

:func:`make_encoder` with :func:`sha1_hasher` (one SHA-1 of salt and
password) is kept for records made with Encore; it is fast to brute-force,
so new deployments should use :func:`make_pbkdf2_encoder`.

When the user records live in the wrapped store (the default), they are
hidden from the wrapped view: keys starting with ``user_key_path`` do not
exist for ``get``, ``exists``, queries and ``glob``, and writing them through
the view raises :class:`AuthenticationError`.
"""
from __future__ import annotations

import hashlib
import hmac
import io
import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Set, Tuple

from .abstract_store import AbstractStore, AuthorizationError
from ._composite import _CompositeStore, _close

if TYPE_CHECKING:
    from encore.events.abstract_event_manager import BaseEventManager

logger = logging.getLogger(__name__)

__all__ = [
    "AuthenticationError",
    "SimpleAuthStore",
    "make_encoder",
    "make_pbkdf2_encoder",
    "sha1_hasher",
    "create_user_record",
    "ALL_PERMISSIONS",
]

#: Every permission :meth:`SimpleAuthStore.check_permissions` can grant.
ALL_PERMISSIONS = frozenset({"connect", "exists", "get", "set", "delete"})

#: The default number of PBKDF2 iterations of :func:`make_pbkdf2_encoder`.
DEFAULT_PBKDF2_ITERATIONS = 600_000

# A user record larger than this is not a password hash.
_MAX_RECORD_SIZE = 65536


class AuthenticationError(AuthorizationError):
    """Raised when a user cannot authenticate or lacks a permission.

    It derives from :class:`~encore.storage.abstract_store.AuthorizationError`
    (so from :class:`~encore.storage.abstract_store.StoreError`); in Encore
    0.8 it derived directly from :class:`Exception`, and ``except
    AuthenticationError`` works as before.
    """


def sha1_hasher(s: bytes) -> bytes:
    """Return the SHA-1 digest of bytes.

    Parameters
    ----------
    s : bytes
        The bytes to hash.

    Returns
    -------
    bytes
        The raw 20-byte digest.
    """
    return hashlib.sha1(s).digest()


def _as_bytes(value: Any, name: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError("{} must be bytes or str, not {}".format(name, type(value).__name__))


def make_encoder(salt: bytes, hasher: Optional[Callable[[bytes], bytes]] = None) -> Callable[[bytes], bytes]:
    """Make a salted password encoder from a hash function (Encore's scheme).

    Parameters
    ----------
    salt : bytes
        Prepended to every password before hashing.  Keep it secret and
        keep it: the same salt must encode the password every time.  A
        ``str`` is encoded as UTF-8.
    hasher : callable, optional
        Maps bytes to their hash (bytes); default :func:`sha1_hasher`.

    Returns
    -------
    callable
        ``encoder(password: bytes) -> bytes``, computing
        ``hasher(salt + password)``.

    Notes
    -----
    A single fast hash can be brute-forced quickly if the records leak;
    prefer :func:`make_pbkdf2_encoder` for new records.  This encoder stays
    for records created with Encore.
    """
    salt = _as_bytes(salt, "salt")
    if hasher is None:
        hasher = sha1_hasher

    def encoder(password: bytes) -> bytes:
        return hasher(salt + _as_bytes(password, "password"))

    return encoder


def make_pbkdf2_encoder(
    salt: bytes,
    iterations: int = DEFAULT_PBKDF2_ITERATIONS,
    hash_name: str = "sha256",
) -> Callable[[bytes], bytes]:
    """Make a slow, salted password encoder (PBKDF2-HMAC, :mod:`hashlib`).

    Parameters
    ----------
    salt : bytes
        A random salt of at least 8 bytes (16 recommended, e.g.
        ``os.urandom(16)``), kept with the user records: the same salt must
        encode the password every time.
    iterations : int, optional
        The PBKDF2 iteration count (default 600 000, current advice for
        SHA-256); it sets how slow each guess is.  Encoding happens once per
        :meth:`SimpleAuthStore.connect`.
    hash_name : str, optional
        The HMAC digest (default ``'sha256'``).

    Returns
    -------
    callable
        ``encoder(password: bytes) -> bytes``.

    Raises
    ------
    TypeError
        If ``salt`` is not bytes.
    ValueError
        If the salt is shorter than 8 bytes, ``iterations`` is not positive
        or ``hash_name`` is unknown.
    """
    if not isinstance(salt, (bytes, bytearray)):
        raise TypeError("salt must be bytes, not {}".format(type(salt).__name__))
    salt = bytes(salt)
    if len(salt) < 8:
        raise ValueError("the salt must be at least 8 bytes long (16 random bytes recommended)")
    if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1:
        raise ValueError("iterations must be a positive int, not {!r}".format(iterations))
    hashlib.new(hash_name)  # ValueError now rather than at connect time

    def encoder(password: bytes) -> bytes:
        return hashlib.pbkdf2_hmac(hash_name, _as_bytes(password, "password"), salt, iterations)

    return encoder


def create_user_record(
    store: Any,
    username: str,
    password: Any,
    encoder: Callable[[bytes], bytes],
    user_key_path: str = ".user_",
) -> str:
    """Create or replace the record of a user, directly in a store.

    This is an administrator's tool: it writes to the store holding the
    records (the wrapped store, or the ``user_key_store``), not through a
    :class:`SimpleAuthStore`, which refuses writes to records.

    Parameters
    ----------
    store : AbstractStore
        The store keeping the records.
    username : str
        The user's name (non-empty).
    password : str or bytes
        The password; a ``str`` is encoded as UTF-8, as
        :meth:`SimpleAuthStore.connect` does.
    encoder : callable
        The encoder the :class:`SimpleAuthStore` uses.
    user_key_path : str, optional
        The prefix of the record keys (default ``'.user_'``).

    Returns
    -------
    str
        The key of the record.

    Raises
    ------
    TypeError, ValueError
        If the username is not a non-empty string or the encoder does not
        return bytes.
    """
    if not isinstance(username, str) or not username:
        raise ValueError("username must be a non-empty str")
    token = _as_bytes(encoder(_as_bytes(password, "password")), "the encoded password")
    key = user_key_path + username
    store.set(key, (io.BytesIO(token), {}))
    return key


class SimpleAuthStore(_CompositeStore, AbstractStore):
    """A store adding username/password authentication to another store.

    Parameters
    ----------
    store : AbstractStore
        The wrapped store, holding the data.
    encoder : callable
        ``encoder(password: bytes) -> bytes``, e.g. from
        :func:`make_pbkdf2_encoder` (recommended) or :func:`make_encoder`.
    user_key_path : str, optional
        The prefix of the keys holding the user records (default
        ``'.user_'``); the record of user ``u`` is ``user_key_path + u``,
        its data the encoded password.
    user_key_store : AbstractReadOnlyStore, optional
        The store holding the records (default: the wrapped store, in which
        case the records are hidden from the view).
    event_manager : BaseEventManager, optional
        Where the store emits its events (default: the package-wide
        manager).

    Attributes
    ----------
    store : AbstractStore
        The wrapped store (kept after :meth:`disconnect`).
    encoder : callable
        The password encoder.
    user_key_path : str
        The record key prefix.
    user_key_store : store
        The store holding the records.

    Notes
    -----
    Every method follows the contract of
    :class:`~encore.storage.abstract_store.AbstractStore`, behind these
    gates: reads (``get``, ``get_data``, ``get_data_range``,
    ``get_metadata``) raise ``KeyError`` for a user record or a key the user
    lacks ``'exists'`` on, and :class:`AuthenticationError` without
    ``'get'``; ``set``, ``set_data`` and ``set_metadata`` need ``'set'``,
    ``update_metadata`` needs ``'exists'`` and ``'set'``, ``delete``
    ``'exists'`` and ``'delete'`` (``KeyError`` without ``'exists'``,
    :class:`AuthenticationError` otherwise, and always for a user record).
    The modification events have this store as their source.
    """

    def __init__(
        self,
        store: Any,
        encoder: Callable[[bytes], bytes],
        user_key_path: str = ".user_",
        user_key_store: Any = None,
        event_manager: Optional["BaseEventManager"] = None,
    ) -> None:
        super().__init__(event_manager=event_manager)
        self.store = store
        self.encoder = encoder
        self.user_key_path = user_key_path
        self.user_key_store = store if user_key_store is None else user_key_store
        self._username: Optional[str] = None
        self._token: Optional[bytes] = None

    def _children(self) -> List[Any]:
        children = [self.store]
        if self.user_key_store is not self.store:
            children.append(self.user_key_store)
        return children

    def _transactional_children(self) -> List[Any]:
        # Only the wrapped store is written through the view.
        store = self.store
        return [store] if callable(getattr(store, "transaction", None)) else []

    # The routing hooks of the composite machinery (see _CompositeStore):
    # everything goes to the wrapped store, once the gates let it through.

    def _source(self, key: str) -> Tuple[Any, str]:
        self._require_read(key)
        return self.store, key

    def _check_write(self, key: str, permission: str, must_exist: bool = False) -> None:
        self._require_write(key, permission, must_exist)

    def _write_target(self, key: str) -> Tuple[Any, str]:
        return self.store, key

    def _copies(self, key: str) -> List[Tuple[Any, str]]:
        return [(self.store, key)] if self.store.exists(key) else []

    # -- authentication ------------------------------------------------------

    @property
    def username(self) -> Optional[str]:
        """str or None : The connected user's name."""
        return self._username

    def connect(self, credentials: Optional[Dict[str, Any]] = None) -> None:
        """Authenticate a user and connect.

        Parameters
        ----------
        credentials : dict
            ``{'username': str, 'password': str or bytes}``; a ``str``
            password is encoded as UTF-8 before the encoder sees it.

        Raises
        ------
        AuthenticationError
            If the credentials are malformed, the user has no record, or the
            password does not match (the message does not say which).  The
            store is left disconnected.
        """
        try:
            username = credentials["username"]  # type: ignore[index]
            password = credentials["password"]  # type: ignore[index]
        except (TypeError, KeyError):
            raise AuthenticationError(
                "credentials must be a dict with 'username' and 'password'") from None
        if not isinstance(username, str):
            raise AuthenticationError("the username must be a str")
        try:
            token = _as_bytes(self.encoder(_as_bytes(password, "password")), "the encoded password")
        except TypeError as error:
            raise AuthenticationError(str(error)) from None
        self._connect_children(None)
        self._username, self._token = username, token
        try:
            permissions = self.check_permissions()
        except BaseException:
            self._forget_user()
            raise
        if "connect" not in permissions:
            self._forget_user()
            raise AuthenticationError("invalid username or password")
        self._connected = True
        logger.debug("User %r connected", username)

    def _forget_user(self) -> None:
        self._username = None
        self._token = None
        self._connected = False
        self._disconnect_children()

    def disconnect(self) -> None:
        """Forget the user and disconnect the children connected by
        :meth:`connect`.

        The wrapped store stays referenced (Encore 0.8 set it to ``None``),
        so the object can connect again.
        """
        self._forget_user()

    def _read_record(self, username: str) -> Optional[bytes]:
        try:
            stream = self.user_key_store.get_data(self.user_key_path + username)
        except KeyError:
            return None
        try:
            record = stream.read(_MAX_RECORD_SIZE + 1)
        finally:
            _close(stream)
        if record is None or len(record) > _MAX_RECORD_SIZE:
            return None
        return bytes(record)

    def check_permissions(self, key: Optional[str] = None) -> Set[str]:
        """Return the permissions the connected user has on a key.

        The default grants every permission to a user whose password matches
        their record, read again at every call (so a changed or removed
        record takes effect at once), and nothing otherwise.  Subclasses
        override this for finer control.

        Parameters
        ----------
        key : str or None
            The key concerned, or ``None`` for the global permissions.

        Returns
        -------
        set of str
            Chosen from ``'connect'``, ``'exists'``, ``'get'``, ``'set'`` and
            ``'delete'``.
        """
        username, token = self._username, self._token
        if username is None or token is None:
            return set()
        record = self._read_record(username)
        if record is None:
            return set()
        if hmac.compare_digest(record, token):
            return set(ALL_PERMISSIONS)
        return set()

    # -- gates ---------------------------------------------------------------

    def _is_record(self, key: str) -> bool:
        return self.user_key_store is self.store and key.startswith(self.user_key_path)

    def _permissions_are_global(self) -> bool:
        return type(self).check_permissions is SimpleAuthStore.check_permissions

    def _require_read(self, key: str) -> None:
        if self._is_record(key):
            raise KeyError(key)
        permissions = self.check_permissions(key)
        if "exists" not in permissions:
            raise KeyError(key)
        if "get" not in permissions:
            raise AuthenticationError("not allowed to read {!r}".format(key))

    def _require_write(self, key: str, permission: str, must_exist: bool = False) -> None:
        if self._is_record(key):
            raise AuthenticationError(
                "{!r} is reserved for user records and cannot be written through "
                "the authenticating store".format(key))
        permissions = self.check_permissions(key)
        if must_exist and "exists" not in permissions:
            raise KeyError(key)
        if permission not in permissions:
            raise AuthenticationError("not allowed to {} {!r}".format(permission, key))

    def _visible(self) -> Callable[[str], bool]:
        """Return a test telling whether the user may see a key."""
        if self._permissions_are_global():
            allowed = "exists" in self.check_permissions()
            if not allowed:
                return lambda key: False
            return lambda key: not self._is_record(key)
        return lambda key: not self._is_record(key) and "exists" in self.check_permissions(key)

    # -- connection info -----------------------------------------------------

    def _info_writer(self) -> Any:
        return self.store

    def _info_details(self) -> Dict[str, Any]:
        return {"user": self._username}

    def transaction(self, notes: str) -> Any:
        """Return a context manager grouping writes into one transaction.

        Only a connected user may open one: the transaction holds the
        wrapped store's transaction lock, which nobody else should be able
        to take.  Inside it every write is still checked, and the writes
        commit or roll back with the wrapped store's transaction.

        Returns
        -------
        context manager
            Nestable; holds this store's modification events until the
            outermost block ends, and drops them when it fails and the
            wrapped store could roll back.

        Raises
        ------
        AuthenticationError
            If no user is connected (``'connect'`` is not among
            :meth:`check_permissions`).
        """
        if "connect" not in self.check_permissions():
            raise AuthenticationError("a transaction needs a connected user")
        return super().transaction(notes)

    # -- reads ---------------------------------------------------------------

    def exists(self, key: str) -> bool:
        """Whether a key exists, for this user.

        Returns
        -------
        bool
            ``False`` for user records and keys the user lacks ``'exists'``
            permission on, even if the wrapped store holds them.
        """
        if self._is_record(key):
            return False
        if "exists" not in self.check_permissions(key):
            return False
        return self.store.exists(key)

    def query(self, select: Optional[Iterable[str]] = None, **kwargs: Any) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """Find the keys the user may see whose metadata match.

        Parameters
        ----------
        select : iterable of str, optional
            The metadata names to return.

        Returns
        -------
        iterator of (str, dict)
            Matching keys and their metadata; nothing when no user is
            connected.
        """
        if select is not None:
            select = list(select)
        return self._filtered(lambda: self.store.query(select, **kwargs), True)

    def query_keys(self, **kwargs: Any) -> Iterator[str]:
        """Find the keys the user may see whose metadata match."""
        return self._filtered(lambda: self.store.query_keys(**kwargs), False)

    def glob(self, pattern: str) -> Iterator[str]:
        """Find the keys the user may see matching a shell-style pattern.

        Parameters
        ----------
        pattern : str
            A pattern for :func:`fnmatch.fnmatchcase`.
        """
        return self._filtered(lambda: self.store.glob(pattern), False)

    def _filtered(self, listing: Callable[[], Iterable[Any]], pairs: bool) -> Iterator[Any]:
        visible = self._visible()
        for item in listing():
            if visible(item[0] if pairs else item):
                yield item

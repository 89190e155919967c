"""Authentication for :mod:`encore.storage.server`: the users file and the
checks of the ``Authorization`` header.

The users file
--------------
One line per credential, ``NAME:RECORD``, where the record is either a
password hash::

    alice:pbkdf2_sha256$600000$<salt, base64>$<hash, base64>

made with :func:`~encore.storage.simple_auth_store.make_pbkdf2_encoder` (the
encoder :class:`~encore.storage.simple_auth_store.SimpleAuthStore`
recommends), or the SHA-256 digest of a bearer token::

    ci-bot:token_sha256$<hex digest>

A token is random and long (:func:`new_token` gives 32 bytes), so one fast
hash is enough to keep the file useless to whoever reads it; passwords are
chosen by people and need the slow, salted hash.  Blank lines and lines
starting with ``#`` are ignored.  The file is rewritten atomically (a new
file renamed over the old one) and created readable by its owner only.

Checking credentials
--------------------
A password check costs one PBKDF2 computation (a fraction of a second, on
purpose).  HTTP Basic sends the password with every request, so a check that
succeeded is remembered for a few minutes under a keyed digest of the name
and password (never the password itself); a changed or removed record is
noticed at once because the remembered check names the record it matched.
An unknown name costs the same PBKDF2 computation as a known one, and every
comparison of secrets uses :func:`hmac.compare_digest`.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import threading
import time
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple, Union

from ._atomic_file import replacing
from .simple_auth_store import DEFAULT_PBKDF2_ITERATIONS, make_pbkdf2_encoder

__all__ = [
    "PasswordFile",
    "Authenticator",
    "hash_password",
    "hash_token",
    "verify_password",
    "new_token",
]

_PASSWORD_SCHEME = "pbkdf2_sha256"
_TOKEN_SCHEME = "token_sha256"


def _check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError("a user name must be a str, not {}".format(type(name).__name__))
    if not name or ":" in name or any(ord(character) < 32 for character in name) or name != name.strip():
        raise ValueError("a user name must be non-empty, without ':', control characters "
                         "or surrounding spaces: {!r}".format(name))
    return name


def _as_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise TypeError("{} must be str or bytes, not {}".format(what, type(value).__name__))


def hash_password(password: Union[str, bytes], iterations: int = DEFAULT_PBKDF2_ITERATIONS,
                  salt: Optional[bytes] = None) -> str:
    """Return the users-file record of a password.

    Parameters
    ----------
    password : str or bytes
        The password (a ``str`` is encoded as UTF-8).
    iterations : int, optional
        The PBKDF2 iteration count (default 600 000).
    salt : bytes, optional
        At least 8 bytes; by default 16 random ones.

    Returns
    -------
    str
        ``pbkdf2_sha256$<iterations>$<salt>$<hash>`` (base64 fields).

    Raises
    ------
    TypeError
        If the password is neither str nor bytes.
    ValueError
        If the password is empty, or the salt or iterations are invalid.
    """
    secret = _as_bytes(password, "the password")
    if not secret:
        raise ValueError("the password is empty")
    salt = os.urandom(16) if salt is None else salt
    digest = make_pbkdf2_encoder(salt, iterations)(secret)
    return "{}${}${}${}".format(_PASSWORD_SCHEME, iterations,
                                base64.b64encode(salt).decode("ascii"),
                                base64.b64encode(digest).decode("ascii"))


def hash_token(token: Union[str, bytes]) -> str:
    """Return the users-file record of a bearer token.

    Parameters
    ----------
    token : str or bytes
        The token.

    Returns
    -------
    str
        ``token_sha256$<hex digest>``.
    """
    return "{}${}".format(_TOKEN_SCHEME, hashlib.sha256(_as_bytes(token, "the token")).hexdigest())


def new_token() -> str:
    """Return a new random bearer token (32 random bytes, URL-safe text).

    Returns
    -------
    str
        The token; give it to its user and keep only :func:`hash_token` of it.
    """
    return secrets.token_urlsafe(32)


def _parse_password_record(record: str) -> Optional[Tuple[int, bytes, bytes]]:
    parts = record.split("$")
    if len(parts) != 4 or parts[0] != _PASSWORD_SCHEME:
        return None
    try:
        iterations = int(parts[1])
        salt = base64.b64decode(parts[2], validate=True)
        digest = base64.b64decode(parts[3], validate=True)
    except (ValueError, binascii.Error):
        return None
    if iterations < 1 or len(salt) < 8 or not digest:
        return None
    return iterations, salt, digest


def verify_password(record: str, password: Union[str, bytes]) -> bool:
    """Tell whether a password matches a users-file record, in constant time.

    Parameters
    ----------
    record : str
        A record made by :func:`hash_password`.
    password : str or bytes
        The password offered.

    Returns
    -------
    bool
        ``True`` if it matches; ``False`` for a wrong password or a record
        that is not a password hash.
    """
    parsed = _parse_password_record(record)
    if parsed is None:
        return False
    iterations, salt, digest = parsed
    offered = make_pbkdf2_encoder(salt, iterations)(_as_bytes(password, "the password"))
    return hmac.compare_digest(offered, digest)


class PasswordFile(object):
    """The users file of ``encore serve --users``: read, change and save it.

    Parameters
    ----------
    path : str or os.PathLike
        The file; it need not exist yet (it is created by :meth:`save`).

    Raises
    ------
    ValueError
        If an existing file has a malformed line (the message names it).
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"]) -> None:
        self.path = os.fspath(path)
        self.records: Dict[str, str] = {}
        if os.path.exists(self.path):
            self.records = read_users(self.path)

    def add_user(self, name: str, password: Union[str, bytes],
                 iterations: int = DEFAULT_PBKDF2_ITERATIONS) -> None:
        """Add a user, or change their password (not saved until :meth:`save`).

        Parameters
        ----------
        name : str
            The user name (no ``:``, no control characters).
        password : str or bytes
            The password, hashed at once.
        iterations : int, optional
            The PBKDF2 iteration count.
        """
        self.records[_check_name(name)] = hash_password(password, iterations)

    def add_token(self, name: str, token: Optional[str] = None) -> str:
        """Give a user a bearer token (not saved until :meth:`save`).

        A user has either a password or a token: this replaces the record.

        Parameters
        ----------
        name : str
            The user name.
        token : str, optional
            The token; by default a new random one (:func:`new_token`).

        Returns
        -------
        str
            The token, which the file does not keep.
        """
        token = new_token() if token is None else token
        if not isinstance(token, str) or len(token) < 16:
            raise ValueError("a token must be a str of at least 16 characters")
        self.records[_check_name(name)] = hash_token(token)
        return token

    def remove(self, name: str) -> None:
        """Remove a user (not saved until :meth:`save`).

        Raises
        ------
        KeyError
            If there is no such user.
        """
        del self.records[name]

    def names(self) -> Iterator[str]:
        """Return the user names, sorted.

        Returns
        -------
        iterator of str
            The names.
        """
        return iter(sorted(self.records))

    def save(self) -> None:
        """Write the file atomically, readable and writable by its owner only."""
        with replacing(self.path, mode=0o600) as stream:
            lines = ["# encore users: NAME:RECORD lines, written by `encore users`\n"]
            lines.extend("{}:{}\n".format(name, self.records[name]) for name in sorted(self.records))
            stream.write("".join(lines).encode("utf-8"))


def read_users(path: Union[str, "os.PathLike[str]"]) -> Dict[str, str]:
    """Read a users file into a mapping of name to record.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    dict of str to str
        Each user's record.

    Raises
    ------
    OSError
        If the file cannot be read.
    ValueError
        If a line is malformed (the message gives its number, not its
        content).
    """
    records: Dict[str, str] = {}
    with open(path, "r", encoding="utf-8") as stream:
        for number, line in enumerate(stream, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, colon, record = line.partition(":")
            if not colon or not name:
                raise ValueError("{}, line {}: not NAME:RECORD".format(path, number))
            if not (record.startswith(_TOKEN_SCHEME + "$") or _parse_password_record(record)):
                raise ValueError("{}, line {}: unknown record scheme".format(path, number))
            records[name] = record
    return records


class Authenticator(object):
    """Checks the ``Authorization`` header of requests.

    Parameters
    ----------
    users : str, os.PathLike or mapping, optional
        A users file (re-read when it changes, so removing a user takes
        effect without a restart) or a mapping of name to record as
        :func:`read_users` returns.
    tokens : mapping, optional
        Bearer tokens given by a program: token to user name.
    realm : str, optional
        The realm named in ``WWW-Authenticate``.
    remember : float, optional
        Seconds a successful password check is remembered (default 300).
    """

    def __init__(self, users: Any = None, tokens: Optional[Mapping[str, str]] = None,
                 realm: str = "encore", remember: float = 300.0) -> None:
        self._path: Optional[str] = None
        self._stamp: Any = None
        self._records: Dict[str, str] = {}
        if isinstance(users, (str, bytes, os.PathLike)):
            self._path = os.fsdecode(users)
            self._reload()
        elif users is not None:
            if not isinstance(users, Mapping):
                raise TypeError("users must be a path or a mapping, not {}".format(type(users).__name__))
            self._records = {_check_name(name): str(record) for name, record in users.items()}
        self._tokens = []
        for token, name in (tokens or {}).items():
            if not isinstance(token, str) or len(token) < 16:
                raise ValueError("a bearer token must be a str of at least 16 characters")
            self._tokens.append((hashlib.sha256(token.encode("utf-8")).digest(), _check_name(name)))
        self.realm = realm
        self.remember = remember
        self._secret = os.urandom(32)
        self._verified: Dict[bytes, Tuple[str, str, float]] = {}
        self._lock = threading.Lock()
        self._dummy = hash_password(os.urandom(16), self._typical_iterations())

    def _typical_iterations(self) -> int:
        for record in self._records.values():
            parsed = _parse_password_record(record)
            if parsed is not None:
                return parsed[0]
        return DEFAULT_PBKDF2_ITERATIONS

    def _reload(self) -> None:
        assert self._path is not None
        try:
            status = os.stat(self._path)
        except FileNotFoundError:
            raise FileNotFoundError("the users file {} does not exist".format(self._path)) from None
        stamp = (status.st_mtime_ns, status.st_size, status.st_ino)
        if stamp != self._stamp:
            self._records = read_users(self._path)
            self._stamp = stamp

    def _current_records(self) -> Dict[str, str]:
        if self._path is not None:
            with self._lock:
                try:
                    self._reload()
                except (OSError, ValueError):
                    # A file being edited by hand: keep what was read last.
                    pass
        return self._records

    @property
    def enabled(self) -> bool:
        """bool : Whether any user or token is configured."""
        return bool(self._path is not None or self._records or self._tokens)

    def challenge(self) -> str:
        """Return the ``WWW-Authenticate`` header of a ``401`` answer.

        Returns
        -------
        str
            Basic (and Bearer, when tokens can be used) challenges.
        """
        return 'Basic realm="{0}", charset="UTF-8", Bearer realm="{0}"'.format(self.realm)

    def authenticate(self, header: Optional[str]) -> Optional[str]:
        """Return the user an ``Authorization`` header proves, or ``None``.

        Parameters
        ----------
        header : str or None
            The header's value (``Basic ...`` or ``Bearer ...``).

        Returns
        -------
        str or None
            The user name; ``None`` for missing, malformed or wrong
            credentials.
        """
        if not header:
            return None
        scheme, _, credentials = header.strip().partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (ValueError, binascii.Error, UnicodeDecodeError):
                return None
            name, colon, password = decoded.partition(":")
            if not colon:
                return None
            return self._check_password(name, password)
        if scheme == "bearer":
            return self._check_token(credentials)
        return None

    def _check_token(self, token: str) -> Optional[str]:
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        hexdigest = _TOKEN_SCHEME + "$" + digest.hex()
        found = None
        # Every candidate is compared, so the time does not say which matched.
        for candidate, name in self._tokens:
            if hmac.compare_digest(candidate, digest):
                found = name
        for name, record in self._current_records().items():
            if record.startswith(_TOKEN_SCHEME + "$") and hmac.compare_digest(
                    record.encode("ascii", "replace"), hexdigest.encode("ascii")):
                found = name
        return found

    def _check_password(self, name: str, password: str) -> Optional[str]:
        record = self._current_records().get(name)
        key = hmac.new(self._secret, name.encode("utf-8") + b"\0" + password.encode("utf-8"),
                       hashlib.sha256).digest()
        now = time.monotonic()
        with self._lock:
            remembered = self._verified.get(key)
        if remembered is not None:
            remembered_name, remembered_record, expiry = remembered
            if expiry > now and record is not None and remembered_record == record:
                return remembered_name
        if record is None or not record.startswith(_PASSWORD_SCHEME + "$"):
            verify_password(self._dummy, password)  # the same cost as a real check
            return None
        if not verify_password(record, password):
            return None
        with self._lock:
            if len(self._verified) >= 4096:
                self._verified = {k: v for k, v in self._verified.items() if v[2] > now}
                if len(self._verified) >= 4096:
                    self._verified.clear()
            self._verified[key] = (name, record, now + self.remember)
        return name

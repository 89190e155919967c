"""A key-value store in S3-compatible object storage (AWS S3, SeaweedFS, MinIO,
Ceph ...), through the `obstore <https://pypi.org/project/obstore/>`_ client.

Install the client with the ``s3`` extra (``pip install ".[s3]"`` from the checkout).

Layout
------
All the objects of a store live under its *prefix* in one bucket::

    <prefix>/.v/<escaped key>     one object per key: header + data
    <prefix>/.index               the optional metadata index (a cache)
    <prefix>/.tx/<id>/<n>         copies kept while a transaction is open

A value is **one object** whose body is a small header (magic bytes, length,
JSON ``{"metadata", "created", "modified"}``) followed by the data (see
:mod:`encore.storage._s3_codec`, which also describes how keys are escaped).
So one PUT publishes data and metadata together: a reader never sees new data
with old metadata, two writers racing on one key never mix their parts, and a
large value is sent as a multipart upload that becomes visible only when it
completes (and is aborted when the upload fails).  Metadata has no size limit
(AWS's 2 KB limit on user metadata does not apply); JSON values and the
other metadata types (datetimes, decimals, bytes, sets, UUIDs ...) round-trip
through the tagged JSON of :mod:`encore.storage._metadata_codec`.
Prefixes may not have segments starting with ``.``, so two stores with
different prefixes in one bucket never see each other's keys, even when one
prefix lies inside the other.

Costs
-----
* ``get``: one GET (the header and the data come in the same response).
  ``get_metadata``/``exists``: one ranged GET/HEAD.  ``get_data_range``:
  two ranged GETs.
* ``set``: one conditional PUT for a new key (``If-None-Match: *``) or for
  a key whose current version this store object wrote or read (``If-Match``
  on its ETag); for a key written elsewhere the conditional PUT fails first
  and the old header is read (to keep ``created``): three requests.  The
  condition is what tells, in the same request, whether the key existed
  (for ``created`` and the set/update event); a plain PUT would need a HEAD
  first.  ``set_data`` is the same for a key this store object knows, else
  the header is read first (the metadata to keep).  Values over 4 MiB are
  uploaded in 5 MiB parts, two at a time.
* ``set_metadata``/``update_metadata`` rewrite the object: the data passes
  through the client (streamed; memory stays bounded).  Small values are
  rewritten with a conditional PUT (``If-Match`` on the ETag read) and retried
  on conflict, so concurrent updates, from any number of processes, lose
  nothing; for values over 4 MiB the rewrite is a multipart upload, which S3
  cannot make conditional: concurrent metadata writers of one large key in
  different processes may lose an update (never mix values).
* ``query``/``query_keys``/``glob``: listing the keys costs one request per
  1,000 keys.  Metadata criteria need each key's header (a 64 KiB ranged GET,
  never the data), fetched concurrently by ``max_workers`` threads.  With
  ``metadata_index=True`` (the default) the headers read are kept in a cache
  checked against the ETags of the listing, in memory and in the ``.index``
  object, so a repeated query over 10,000 keys costs ~10 listing requests and
  one GET of the index instead of 10,000 GETs.  The index is never trusted
  beyond the listing: an entry whose ETag differs is read again.

Transactions
------------
S3 has no multi-object transactions.  :meth:`S3Store.transaction` gives what
can be built on it: inside the outermost block, before the first write to a
key, its object is copied (server-side) under ``.tx/``; when the block raises,
every key touched is restored from its copy (or deleted if it was new) and the
block's events are dropped; when it ends normally the copies are deleted and
the events are emitted.  Transactions of one store object are serialised.
There is no isolation: other clients see the writes of an open transaction,
and a process that dies inside one leaves its writes and the copies in place.

Example
-------
::

    from encore.storage.s3_store import S3Store
    store = S3Store("my-bucket", "projects/a", endpoint_url="http://127.0.0.1:8333")
    store.connect({"access_key_id": "...", "secret_access_key": "..."})
"""
from __future__ import annotations

import concurrent.futures
import datetime
import hashlib
import hmac
import http.client
import io
import logging
import os
import queue
import random
import threading
import time
import urllib.parse
import uuid
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple, cast

from . import _s3_codec as codec
from .abstract_store import (
    AbstractStore,
    AuthorizationError,
    StoreError,
    Value,
    copy_metadata,
    select_metadata,
    value_parts,
)
from ._metadata_codec import decode_metadata
from .events import StoreDeleteEvent
from .utils import DEFAULT_BUFFER_SIZE, _chunk_bytes, is_listened, slice_offsets, store_progress

logger = logging.getLogger(__name__)

__all__ = ["S3Store", "S3Value"]

#: Values whose data (with header) fit in this many bytes are sent in one PUT.
SINGLE_PUT_LIMIT = 4 << 20
#: The part size of multipart uploads (S3's minimum).
PART_SIZE = 5 << 20
#: The parts of one upload in flight at once (bounds the client's memory).
UPLOAD_CONCURRENCY = 2
#: Objects up to this size are read whole by ``get``.
INLINE_LIMIT = 1 << 20
#: The chunk size of streamed reads.
READ_CHUNK = 1 << 20
#: The first ranged GET of a header asks for this many bytes.
HEADER_PROBE = 64 << 10
#: How often a conditional write that lost a race is tried again.
CONFLICT_RETRIES = 64

_CLIENT_CONFIG_KEYS = {
    "allow_http", "allow_invalid_certificates", "connect_timeout", "default_content_type",
    "default_headers", "http1_only", "http2_only", "pool_idle_timeout",
    "pool_max_idle_per_host", "proxy_url", "proxy_ca_certificate", "proxy_excludes",
    "root_certificate", "randomize_addresses", "read_timeout", "timeout", "user_agent",
}

_CREDENTIAL_NAMES = {
    "access_key_id": "access_key_id",
    "aws_access_key_id": "access_key_id",
    "secret_access_key": "secret_access_key",
    "aws_secret_access_key": "secret_access_key",
    "session_token": "session_token",
    "aws_session_token": "session_token",
    "token": "session_token",
}


def _obstore() -> Any:
    try:
        import obstore
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError(
            "S3Store needs the obstore package: pip install \".[s3]\" in the encore checkout (or pip install obstore)"
        ) from None
    return obstore


class _Header(object):
    """What the header of one object says, and where its data starts."""

    __slots__ = ("metadata", "created", "modified", "etag", "offset", "size", "key")

    def __init__(self, metadata, created, modified, etag, offset, size, key=None):
        self.key = key  # recorded only for hashed object names
        self.metadata = metadata
        self.created = created
        self.modified = modified
        self.etag = etag
        self.offset = offset  # where the data starts in the object
        self.size = size  # the size of the data


class _ChunkReader(io.RawIOBase):
    """A readable stream over an iterator of byte chunks (an obstore body).

    Raises :class:`StoreError` when the body ends before ``length`` bytes.
    """

    def __init__(self, chunks: Iterator[Any], length: Optional[int], initial: bytes = b"",
                 name: str = "") -> None:
        super().__init__()
        self._chunks: Optional[Iterator[Any]] = chunks
        self._buffer: Optional[memoryview] = memoryview(initial) if initial else None
        self._remaining = length
        self._name = name

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        while self._buffer is None or not len(self._buffer):
            if self._chunks is None:
                return False
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._chunks = None
                if self._remaining:
                    raise StoreError(
                        "the body of object {!r} ended {} bytes early".format(
                            self._name, self._remaining)) from None
                return False
            except FileNotFoundError as error:
                raise StoreError("object {!r} vanished while read: {}".format(self._name, error)) from None
            self._buffer = memoryview(chunk).cast("B")
        return True

    def read(self, size: Optional[int] = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if size == 0 or not self._fill():
            return b""
        buffer = cast(memoryview, self._buffer)
        piece = bytes(buffer[:size])
        self._buffer = buffer[len(piece):]
        if self._remaining is not None:
            self._remaining -= len(piece)
        return piece

    def readinto(self, target: Any) -> int:
        piece = self.read(len(target))
        target[:len(piece)] = piece
        return len(piece)

    def readall(self) -> bytes:
        parts: List[bytes] = []
        while True:
            piece = self.read(READ_CHUNK)
            if not piece:
                return b"".join(parts)
            parts.append(piece)

    def close(self) -> None:
        self._chunks = None
        self._buffer = None
        super().close()


class S3Value(Value):
    """The value of a key of an :class:`S3Store`.

    Made by :meth:`S3Store.get`.  Small values (up to 1 MiB) are read whole
    with their metadata.  For larger ones the first :attr:`data` stream is the
    body of the GET that read the metadata; later streams and :meth:`range`
    make new ranged GETs that succeed only while the object is unchanged
    (``If-Match`` on its ETag), so a value never mixes two versions: if the key
    was rewritten meanwhile they raise
    :class:`~encore.storage.abstract_store.StoreError`.

    Attributes
    ----------
    size : int
        The size of the data in bytes.
    created : float or None
        When the key was first set (seconds since the epoch); ``None`` for an
        object the store did not write.
    modified : float
        When the key was last written.
    etag : str or None
        The ETag of the object read.
    """

    def __init__(self, store: "S3Store", name: str, header: _Header, inline: Optional[bytes] = None,
                 stream: Any = None) -> None:
        self._store = store
        self._name = name
        self._header = header
        self._inline = inline
        self._stream = stream
        self.size = header.size
        self.created = header.created
        self.modified = header.modified
        self.etag = header.etag

    @property
    def data(self) -> Any:
        """file-like : A stream over the data, from its start."""
        if self._inline is not None:
            return io.BytesIO(self._inline)
        stream, self._stream = self._stream, None
        if stream is not None:
            return stream
        header = self._header
        return self._store._open_range(self._name, header.etag, header.offset, header.offset + header.size)

    @property
    def metadata(self) -> Dict[str, Any]:
        """dict : A new copy of the metadata."""
        return copy_metadata(self._header.metadata)

    def range(self, start: Optional[int] = None, end: Optional[int] = None) -> Any:
        """Return a stream over part of the data: a ranged GET of the version
        read (small values: a slice of the data in memory).

        Raises
        ------
        StoreError
            If the object changed since the value was read.
        """
        first, last = slice_offsets(start, end, self.size)
        if self._inline is not None:
            return io.BytesIO(self._inline[first:last])
        header = self._header
        return self._store._open_range(self._name, header.etag, header.offset + first, header.offset + last)


class S3Store(AbstractStore):
    """A store in a bucket of S3-compatible object storage.

    See the module documentation for the layout, the cost of each operation
    and what transactions can do.

    Parameters
    ----------
    bucket : str
        The bucket's name.
    prefix : str, optional
        Where the store lives in the bucket (``''``: at the top).  Leading and
        trailing ``/`` are ignored; segments may not be empty or start with
        ``.``.
    client : obstore.store.S3Store, optional
        A ready obstore client for ``bucket``; then ``endpoint_url``,
        credentials and ``client_options`` are not used.
    endpoint_url : str, optional
        The server (``http://127.0.0.1:8333`` for a local SeaweedFS; plain
        ``http://`` is allowed).  Default: AWS, or ``AWS_ENDPOINT_URL``.
    create_bucket : bool, optional
        Create the bucket on :meth:`connect` if it does not exist (a signed
        request when the access keys are known, else boto3's when installed).
    event_manager : BaseEventManager, optional
        Where the store emits its events; default: the package-wide manager.
    metadata_index : bool, optional
        Keep the ``.index`` object of metadata read by queries (default
        ``True``; see "Costs" in the module documentation).
    max_workers : int, optional
        The threads reading headers concurrently for a query (default 16).
    **client_options
        More obstore options: S3 configuration (``region``,
        ``virtual_hosted_style_request``, ``checksum_algorithm`` ...), HTTP
        client options (``timeout``, ``connect_timeout``, ``allow_http``
        ...) and ``retry_config``.  Without a ``region`` (or
        ``AWS_REGION``/``AWS_DEFAULT_REGION``), ``us-east-1`` is used.

    Raises
    ------
    TypeError, ValueError
        If the bucket or prefix is not a valid name.
    """

    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None, endpoint_url: Optional[str] = None,
                 create_bucket: bool = False, event_manager: Any = None, metadata_index: bool = True,
                 max_workers: int = 16, **client_options: Any) -> None:
        super().__init__(event_manager=event_manager)
        if not isinstance(bucket, str):
            raise TypeError("the bucket name is a str, not {}".format(type(bucket).__name__))
        if len(bucket) < 3 or "/" in bucket:
            raise ValueError("invalid bucket name {!r}: at least 3 characters, no '/'".format(bucket))
        if not isinstance(prefix, str):
            raise TypeError("the prefix is a str, not {}".format(type(prefix).__name__))
        root = prefix.strip("/")
        for segment in root.split("/") if root else []:
            if not segment or segment.startswith(".") or len(segment.encode("utf-8")) > 200:
                raise ValueError(
                    "invalid prefix {!r}: its segments must be non-empty, at most 200 bytes "
                    "and not start with '.'".format(prefix))
        if endpoint_url is not None and not isinstance(endpoint_url, str):
            raise TypeError("endpoint_url is a str, not {}".format(type(endpoint_url).__name__))
        if not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError("max_workers must be a positive int, got {!r}".format(max_workers))
        self.bucket = bucket
        self.prefix = root
        self.endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        self.create_bucket = bool(create_bucket)
        self.metadata_index = bool(metadata_index)
        self.max_workers = max_workers
        self._given_client = client
        self._client_options = dict(client_options)
        self._client: Any = None
        self._region: Optional[str] = None
        self._credentials: Dict[str, str] = {}
        self._session: Any = None
        area = root + "/" if root else ""
        self._values_prefix = area + ".v/"
        self._hashed_prefix = self._values_prefix + codec.HASHED
        self._index_name = area + ".index"
        self._tx_prefix = area + ".tx/"
        # name -> (etag, header) of objects read or written by this process.
        self._cache: Dict[str, Tuple[str, _Header]] = {}
        self._cache_lock = threading.Lock()
        self._index_etag: Optional[str] = None
        self._index_entries: Dict[str, Tuple[str, _Header]] = {}
        self._pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._undo: Optional[Dict[str, Optional[str]]] = None
        self._undo_thread: Optional[int] = None
        self._tx_id = ""

    # -- connection ------------------------------------------------------------

    def connect(self, credentials: Any = None) -> None:
        """Connect to the bucket, checking that it can be listed.

        Parameters
        ----------
        credentials : None, dict or boto3.session.Session, optional
            ``None`` takes the credentials from the environment
            (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
            ``AWS_SESSION_TOKEN``, profiles through obstore's own chain); a
            dictionary gives ``access_key_id``, ``secret_access_key`` and
            optionally ``session_token`` (the ``aws_`` names are accepted
            too); a boto3 session lends its credential chain (profiles, SSO,
            roles).  Ignored when the store was made with ``client=``.

        Raises
        ------
        TypeError
            If ``credentials`` is of another type.
        AuthorizationError
            If the server refuses the credentials.
        StoreError
            If the bucket does not exist (and ``create_bucket`` is false) or
            the endpoint cannot be reached.
        """
        obstore = _obstore()
        if self._given_client is not None:
            self._client = self._given_client
        else:
            self._client = self._make_client(obstore, credentials)
        try:
            self._check_bucket(obstore)
        except _MissingBucket:
            if not self.create_bucket:
                raise StoreError(
                    "bucket {!r} does not exist at {}: create it, or pass create_bucket=True".format(
                        self.bucket, self.endpoint_url or "AWS")) from None
            self._make_bucket()
            self._check_bucket(obstore)
        self._connected = True

    def _make_client(self, obstore: Any, credentials: Any) -> Any:
        from obstore.store import S3Store as ObstoreS3Store

        # Plain dictionaries of the caller's options; obstore checks them.
        options: Dict[str, Any] = dict(self._client_options)
        retry_config = options.pop("retry_config", None)
        client_config: Dict[str, Any] = {
            name: options.pop(name) for name in list(options) if name in _CLIENT_CONFIG_KEYS}
        client_config.setdefault("connect_timeout", "10s")
        # Streams of large values stay open while the caller reads them.
        client_config.setdefault("timeout", "3600s")
        if self.endpoint_url:
            options["endpoint"] = self.endpoint_url
            if self.endpoint_url.startswith("http://"):
                client_config.setdefault("allow_http", True)
        if "region" not in options and not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
            options["region"] = "us-east-1"
        provider = None
        self._credentials = {}
        self._session = None
        if credentials is None:
            for env_name, name in (("AWS_ACCESS_KEY_ID", "access_key_id"),
                                   ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
                                   ("AWS_SESSION_TOKEN", "session_token")):
                if os.environ.get(env_name):
                    self._credentials[name] = os.environ[env_name]
        elif isinstance(credentials, dict):
            for name, value in credentials.items():
                if name not in _CREDENTIAL_NAMES:
                    raise ValueError(
                        "unknown credential {!r}: use access_key_id, secret_access_key, session_token".format(name))
                if not isinstance(value, str):
                    raise TypeError("credential {!r} is a str, not {}".format(name, type(value).__name__))
                self._credentials[_CREDENTIAL_NAMES[name]] = value
            options.update(self._credentials)
        elif hasattr(credentials, "get_credentials") and hasattr(credentials, "client"):
            from obstore.auth.boto3 import Boto3CredentialProvider

            provider = Boto3CredentialProvider(credentials)
            self._session = credentials
        else:
            raise TypeError(
                "credentials are None, a dict or a boto3 session, not {}".format(type(credentials).__name__))
        self._region = options.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        try:
            return ObstoreS3Store(self.bucket, config=cast(Any, options), client_options=cast(Any, client_config),
                                  retry_config=retry_config, credential_provider=provider)
        except Exception as error:
            raise ValueError("invalid S3 configuration: {}".format(error)) from None

    def _check_bucket(self, obstore: Any) -> None:
        try:
            stream = obstore.list(self._client, prefix=self._values_prefix.rstrip("/"), chunk_size=1)
            next(iter(stream), None)
        except Exception as error:
            text = str(error)
            if "NoSuchBucket" in text:
                raise _MissingBucket() from None
            raise self._translate(error, None) from None

    def _make_bucket(self) -> None:
        endpoint = self.endpoint_url
        if self._credentials.get("access_key_id") and self._credentials.get("secret_access_key") and endpoint:
            _signed_create_bucket(endpoint, self.bucket, self._region or "us-east-1", self._credentials)
            return
        try:
            import boto3  # type: ignore[import-not-found, import-untyped, unused-ignore]
        except ImportError:
            raise StoreError(
                "bucket {!r} does not exist and obstore cannot create buckets: install boto3 "
                "(pip install boto3), pass the access keys as a dict to connect(), or create "
                "the bucket with your provider's tools".format(self.bucket)) from None
        session = self._session or boto3.session.Session()
        client = session.client("s3", endpoint_url=endpoint, region_name=self._region)
        try:
            if self._region and self._region != "us-east-1":
                client.create_bucket(Bucket=self.bucket,
                                     CreateBucketConfiguration={"LocationConstraint": self._region})
            else:
                client.create_bucket(Bucket=self.bucket)
        except Exception as error:
            if "BucketAlreadyOwnedByYou" not in str(error):
                raise StoreError("could not create bucket {!r}: {}".format(self.bucket, error)) from None

    def disconnect(self) -> None:
        """Disconnect: stop the query threads and drop the client."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self._client = None
        self._connected = False

    def info(self) -> Dict[str, Any]:
        """Describe the store.

        Returns
        -------
        dict
            Also ``bucket``, ``prefix`` and ``endpoint_url``.
        """
        return {"type": "S3Store", "readonly": False, "authorizing": False, "bucket": self.bucket,
                "prefix": self.prefix, "endpoint_url": self.endpoint_url}

    # -- errors ----------------------------------------------------------------

    def _translate(self, error: BaseException, key: Optional[str]) -> BaseException:
        """Turn an obstore error into an encore or built-in exception."""
        from obstore import exceptions as obstore_errors

        text = str(error).split("\n\nDebug source:")[0]
        where = "bucket {!r} at {}".format(self.bucket, self.endpoint_url or "AWS")
        if isinstance(error, FileNotFoundError):
            if "NoSuchBucket" in text:
                return StoreError("{} does not exist (deleted since connect?)".format(where))
            return KeyError(key)
        if isinstance(error, (obstore_errors.PermissionDeniedError, obstore_errors.UnauthenticatedError)) or \
                "InvalidAccessKeyId" in text or "SignatureDoesNotMatch" in text or "403 Forbidden" in text:
            return AuthorizationError(
                "{} refused the request: check the credentials (access key, secret, session token) "
                "and their permissions: {}".format(where, text))
        if "error sending request" in text or "Connection refused" in text or "dns error" in text:
            return StoreError("cannot reach {}: is the endpoint URL right and the server up? ({})".format(
                where, text))
        if isinstance(error, (TypeError, ValueError, KeyError)):
            return error
        return StoreError("S3 request on {} failed: {}".format(where, text))

    def _call(self, function: Any, *args: Any, key: Optional[str] = None, **kwargs: Any) -> Any:
        client = self._client
        if client is None:
            raise StoreError("the store is not connected: call connect() first")
        try:
            return function(client, *args, **kwargs)
        except (StoreError, KeyError, TypeError):
            raise
        except Exception as error:
            from obstore import exceptions as obstore_errors

            if isinstance(error, (obstore_errors.PreconditionError, obstore_errors.AlreadyExistsError,
                                  obstore_errors.NotModifiedError)):
                raise
            raise self._translate(error, key) from None

    def _pool_executor(self) -> concurrent.futures.ThreadPoolExecutor:
        pool = self._pool
        if pool is None:
            with self._cache_lock:
                pool = self._pool
                if pool is None:
                    pool = self._pool = concurrent.futures.ThreadPoolExecutor(
                        self.max_workers, thread_name_prefix="encore-s3")
        return pool

    # -- names -----------------------------------------------------------------

    def _name(self, key: str) -> str:
        name = self._values_prefix + codec.encode_key(key)
        if len(name) * 4 > codec.NAME_BYTES and len(name.encode("utf-8")) > codec.NAME_BYTES:
            name = self._values_prefix + codec.hashed_name(key)
        return name

    def _recorded_key(self, name: str, key: str) -> Optional[str]:
        """The key to record in the header of ``name`` (hashed names only)."""
        return key if name.startswith(self._hashed_prefix) else None

    def _key(self, name: str, header: Optional[_Header] = None) -> Optional[str]:
        """The key of an object name (``None``: deleted, for a hashed name)."""
        if name.startswith(self._hashed_prefix):
            if header is None:
                try:
                    header = self._read_header(name, name)
                except KeyError:
                    return None
            return header.key
        return codec.decode_key(name[len(self._values_prefix):])

    # -- reading ---------------------------------------------------------------

    def _parse(self, raw: bytes, meta: Any, object_size: int, name: str, key: str) -> Optional[_Header]:
        """Parse a header from the first bytes of an object; ``None`` when
        more bytes are needed.  A header that cannot be decoded, or claims
        more bytes than the object has, raises :func:`_corrupt`'s error."""
        etag, last_modified = meta["e_tag"], meta["last_modified"]
        offset = codec.header_length(raw[:codec.PREFIX_SIZE])
        if offset is None:
            modified = last_modified.timestamp() if last_modified is not None else None
            return _Header({}, None, modified, etag, 0, object_size)
        if offset > object_size:
            raise _corrupt(name, key, "its header claims {} bytes but the object has {}".format(
                offset, object_size))
        if len(raw) < offset:
            return None
        try:
            metadata, created, modified, recorded = codec.parse_header(bytes(raw[:offset]))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise _corrupt(name, key, "its header cannot be decoded ({}: {})".format(
                type(error).__name__, error)) from None
        return _Header(metadata, created, modified, etag, offset, object_size - offset, recorded)

    def _whole(self, raw: bytes, meta: Any, object_size: int, name: str, key: str) -> _Header:
        """Parse a header from bytes holding at least all of it."""
        header = self._parse(raw, meta, object_size, name, key)
        if header is None:
            raise _corrupt(name, key, "its header is truncated")
        return header

    def _read_header(self, name: str, key: str) -> _Header:
        """Read the header of an object with ranged GETs (never its data)."""
        obstore = _obstore()
        try:
            result = self._call(obstore.get, name, key=key, options={"range": (0, HEADER_PROBE)})
        except StoreError as error:
            if "416" not in str(error):
                raise
            result = self._call(obstore.get, name, key=key)  # an empty (foreign) object
        meta = result.meta
        raw = bytes(result.bytes())
        header = self._parse(raw, meta, meta["size"], name, key)
        if header is None:
            offset = codec.header_length(raw[:codec.PREFIX_SIZE])
            try:
                rest = self._call(obstore.get, name, key=key,
                                  options={"range": (len(raw), offset), "if_match": meta["e_tag"]})
            except Exception as error:
                if _is_conflict(error):
                    return self._read_header(name, key)  # rewritten meanwhile: start again
                raise
            raw += bytes(rest.bytes())
            header = self._whole(raw, meta, meta["size"], name, key)
        self._remember_header(name, header)
        return header

    def _header_or_none(self, name: str, key: str) -> Optional[_Header]:
        try:
            return self._read_header(name, key)
        except KeyError:
            return None

    def _remember_header(self, name: str, header: _Header) -> None:
        if header.etag is None:
            return
        with self._cache_lock:
            if len(self._cache) > 200_000:
                self._cache.clear()
            self._cache[name] = (header.etag, header)

    def _open_range(self, name: str, etag: Optional[str], start: int, end: int) -> Any:
        """Open a stream over bytes ``start:end`` of an unchanged object."""
        if end <= start:
            return io.BytesIO(b"")
        options: Dict[str, Any] = {"range": (start, end)}
        if etag is not None:
            options["if_match"] = etag
        try:
            result = self._call(_obstore().get, name, options=options)
        except KeyError:
            raise StoreError("object {!r} was deleted since its value was read".format(name)) from None
        except Exception as error:
            if _is_conflict(error):
                raise StoreError("object {!r} was rewritten since its value was read".format(name)) from None
            raise
        return _ChunkReader(iter(result.stream(min_chunk_size=READ_CHUNK)), end - start, name=name)

    def get(self, key: str) -> S3Value:
        """Return the value of a key, with one GET (the header and the data
        come in the same response).

        Returns
        -------
        S3Value
            One version of the key: its data never mixes with another's.
        """
        name = self._name(key)
        result = self._call(_obstore().get, name, key=key)
        meta = result.meta
        size = meta["size"]
        if size <= INLINE_LIMIT:
            raw = bytes(result.bytes())
            header = self._whole(raw, meta, size, name, key)
            self._remember_header(name, header)
            return S3Value(self, name, header, inline=raw[header.offset:])
        reader = _ChunkReader(iter(result.stream(min_chunk_size=READ_CHUNK)), size, name=name)
        prefix = _read_exactly(reader, codec.PREFIX_SIZE)
        offset = codec.header_length(prefix)
        # Both parse a whole header (or none): never None.
        if offset is None:
            header = self._whole(prefix, meta, size, name, key)
            stream = _ChunkReader(_chain(prefix, reader), size, name=name)
        else:
            raw = prefix + _read_exactly(reader, offset - len(prefix))
            header = self._whole(raw, meta, size, name, key)
            stream = reader
        self._remember_header(name, header)
        return S3Value(self, name, header, stream=stream)

    def get_metadata(self, key: str, select: Optional[Iterable[str]] = None) -> Dict[str, Any]:
        """Return the metadata of a key, with a ranged GET of its header
        (never the data)."""
        metadata = self._read_header(self._name(key), key).metadata
        if select is None:
            return copy_metadata(metadata)
        return select_metadata(metadata, select)

    def get_data_range(self, key: str, start: Optional[int] = None, end: Optional[int] = None) -> Any:
        """Return part of the data of a key, with two ranged GETs (the header,
        then the bytes of one version)."""
        name = self._name(key)
        header = self._read_header(name, key)
        first, last = slice_offsets(start, end, header.size)
        try:
            return self._open_range(name, header.etag, header.offset + first, header.offset + last)
        except StoreError:
            return self.get(key).range(start, end)  # rewritten in between: read the new version

    def exists(self, key: str) -> bool:
        """Whether a key is in the store (one HEAD)."""
        try:
            self._call(_obstore().head, self._name(key), key=key)
        except KeyError:
            return False
        return True

    # -- queries ---------------------------------------------------------------

    def _listing(self) -> List[Tuple[str, Optional[str]]]:
        """Return ``(object name, etag)`` of every key, one request per 1,000."""
        obstore = _obstore()
        listing = []
        for chunk in self._call(obstore.list, self._values_prefix.rstrip("/"), chunk_size=1000):
            for meta in chunk:
                listing.append((meta["path"], meta["e_tag"]))
        return listing

    def _load_index(self) -> None:
        obstore = _obstore()
        options = {"if_none_match": self._index_etag} if self._index_etag else None
        try:
            result = self._call(obstore.get, self._index_name, options=options)
            raw = bytes(result.bytes())
            document = decode_metadata(raw.decode("utf-8"))
            entries = document["entries"]
        except KeyError:
            return
        except Exception as error:
            if type(error).__name__ != "NotModifiedError":
                logger.warning("ignoring unreadable metadata index %s: %s", self._index_name, error)
            return
        self._index_etag = result.meta["e_tag"]
        loaded = {}
        for name, (etag, metadata, created, modified, offset, size, key) in entries.items():
            loaded[name] = (etag, _Header(metadata, created, modified, etag, offset, size, key))
        self._index_entries = loaded

    def _save_index(self, listing: List[Tuple[str, Optional[str]]]) -> None:
        entries = {}
        with self._cache_lock:
            for name, etag in listing:
                cached = self._cache.get(name)
                if cached is not None and cached[0] == etag:
                    header = cached[1]
                    entries[name] = [etag, header.metadata, header.created, header.modified,
                                     header.offset, header.size, header.key]
        body = codec.encode_document({"version": 1, "entries": entries}).encode("utf-8")
        try:
            result = self._call(_obstore().put, self._index_name, body)
            self._index_etag = result["e_tag"]
        except Exception as error:  # the index is only a cache
            logger.warning("could not write the metadata index %s: %s", self._index_name, error)

    def _headers(self, listing: List[Tuple[str, Optional[str]]]) -> Dict[str, _Header]:
        """Return the header of each listed object, read where not cached."""
        if self.metadata_index:
            self._load_index()
        found: Dict[str, _Header] = {}
        missing = []
        with self._cache_lock:
            cache = self._cache
            indexed = self._index_entries
            for name, etag in listing:
                cached = cache.get(name)
                if cached is None or cached[0] != etag:
                    cached = indexed.get(name)
                    if cached is not None and cached[0] == etag:
                        cache[name] = cached
                if cached is not None and etag is not None and cached[0] == etag:
                    found[name] = cached[1]
                else:
                    missing.append(name)
        if missing:
            def read(name: str) -> Optional[_Header]:
                try:
                    return self._read_header(name, name)
                except KeyError:
                    return None  # deleted since the listing

            if len(missing) == 1:
                results = [read(missing[0])]
            else:
                results = list(self._pool_executor().map(read, missing))
            for name, header in zip(missing, results):
                if header is not None:
                    found[name] = header
        if self.metadata_index and (missing or self._index_etag is None) and listing:
            self._save_index(listing)
        return found

    def query(self, select: Optional[Iterable[str]] = None, **kwargs: Any) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """Find the keys whose metadata match the given values.

        Listing costs one request per 1,000 keys; when metadata is needed
        (criteria given, or ``select`` not empty) each key's header is read
        (a ranged GET, ``max_workers`` at a time), except those found in the
        cache or the metadata index with an unchanged ETag (see "Costs" in
        the module documentation).
        """
        if select is not None:
            select = list(select)
        listing = self._listing()
        if not kwargs and select == []:
            keys = [self._key(name) for name, _ in listing]
            return iter([(key, {}) for key in keys if key is not None])
        headers = self._headers(listing)
        criteria = list(kwargs.items())
        results = []
        for name, _ in listing:
            header = headers.get(name)
            if header is None:
                continue
            metadata = header.metadata
            if all(metadata.get(field) == value for field, value in criteria):
                key = self._key(name, header)
                if key is None:
                    continue
                if select is None:
                    results.append((key, copy_metadata(metadata)))
                else:
                    results.append((key, select_metadata(metadata, select)))
        return iter(results)

    def query_keys(self, **kwargs: Any) -> Iterator[str]:
        """Find the keys whose metadata match the given values; with no
        criteria the listing alone (one request per 1,000 keys)."""
        return (key for key, _ in self.query(select=(), **kwargs))

    # -- writing ---------------------------------------------------------------

    def _read_first(self, stream: Any, buffer_size: int, progress: Any) -> Tuple[List[bytes], int, bool]:
        """Read up to SINGLE_PUT_LIMIT bytes; return (chunks, size, at_end)."""
        if buffer_size is None or buffer_size <= 0:
            buffer_size = DEFAULT_BUFFER_SIZE
        chunks: List[bytes] = []
        total = 0
        while total <= SINGLE_PUT_LIMIT:
            chunk = _chunk_bytes(stream.read(buffer_size))
            if not chunk:
                progress.step(step=total)
                return chunks, total, True
            chunks.append(chunk)
            total += len(chunk)
            progress.step(step=total)
        return chunks, total, False

    def _body(self, header: bytes, chunks: List[bytes], stream: Any, total: int, buffer_size: int,
              progress: Any) -> Iterator[bytes]:
        """The parts of a multipart body: header, chunks read, rest of stream."""
        yield header
        while chunks:
            yield chunks.pop(0)
        if buffer_size is None or buffer_size <= 0:
            buffer_size = DEFAULT_BUFFER_SIZE
        while True:
            chunk = _chunk_bytes(stream.read(buffer_size))
            if not chunk:
                return
            total += len(chunk)
            progress.step(step=total)
            yield chunk

    def _put_stream(self, name: str, key: str, parts: Iterator[bytes]) -> Optional[str]:
        """Upload an iterator of parts as a multipart upload, in bounded memory.

        obstore runs the upload on its own runtime, which cannot call back
        into obstore (a GET stream being copied, say): the parts are produced
        on this thread and handed to an uploading thread through a small
        queue.  If producing fails, the exception is passed to the upload,
        which aborts the multipart upload, and is raised here.
        """
        handoff: "queue.Queue[Any]" = queue.Queue(maxsize=2)
        outcome: Dict[str, Any] = {}

        def consume() -> Iterator[bytes]:
            while True:
                item = handoff.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item

        def upload() -> None:
            try:
                outcome["etag"] = self._put(name, key, consume())
            except BaseException as error:  # handed to the producing thread
                outcome["error"] = error

        worker = threading.Thread(target=upload, name="encore-s3-upload", daemon=True)
        worker.start()

        def hand(item: Any) -> bool:
            while worker.is_alive():
                try:
                    handoff.put(item, timeout=0.5)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for part in parts:
                if not hand(part):
                    break
        except BaseException as error:
            hand(_Aborted(error))
            worker.join()
            raise
        else:
            hand(_END)
            worker.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("etag")

    def _put(self, name: str, key: str, body: Any, mode: Any = None) -> Optional[str]:
        obstore = _obstore()
        if isinstance(body, bytes):
            result = self._call(obstore.put, name, body, key=key, mode=mode, use_multipart=False)
        else:
            result = self._call(obstore.put, name, body, key=key, use_multipart=True,
                                chunk_size=PART_SIZE, max_concurrency=UPLOAD_CONCURRENCY)
        return result["e_tag"]

    def _store_data(self, key: str, stream: Any, buffer_size: int, metadata: Optional[Dict[str, Any]],
                    steps: int) -> Tuple[bool, Dict[str, Any]]:
        """Write data (and ``metadata``, or keep the old metadata when None).

        Returns whether the key existed and the metadata written.
        """
        name = self._name(key)
        self._remember(name)
        # The version this process last wrote or read, if any: tried first,
        # conditionally on its ETag (one request when it is still current).
        with self._cache_lock:
            cached = self._cache.get(name)
        old = cached[1] if cached is not None else None
        fresh = metadata is None and old is None
        if fresh:
            old = self._header_or_none(name, key)  # the metadata to keep
        shown = metadata if metadata is not None else (old.metadata if old is not None else {})
        with store_progress(self, key, copy_metadata(shown), "Storing {}".format(key), steps,
                            stream) as progress:
            chunks, total, at_end = self._read_first(stream, buffer_size, progress)
            if at_end:
                data = b"".join(chunks)
                del chunks
                return self._put_small(name, key, data, metadata, old, cached is not None)
            # Large: a multipart upload, which cannot be conditional.
            if not fresh:
                old = self._header_or_none(name, key)
            now = time.time()
            written = metadata if metadata is not None else (old.metadata if old is not None else {})
            created = old.created if old is not None and old.created is not None else now
            header = codec.pack_header(written, created, now, self._recorded_key(name, key))
            etag = self._put_stream(name, key, self._body(header, chunks, stream, total, buffer_size, progress))
        self._cache_written(name, key, etag, written, created, now, len(header), total)
        return old is not None, written

    def _put_small(self, name: str, key: str, data: bytes, metadata: Optional[Dict[str, Any]],
                   old: Optional[_Header], guessed: bool) -> Tuple[bool, Dict[str, Any]]:
        """Write a small value in one conditional PUT, retrying lost races.

        ``old`` is the key's current header as far as this store knows
        (``None``: the key is new); ``guessed`` says that it comes from the
        cache rather than from a read just made.  The PUT is conditional on
        what ``old`` says -- ``If-None-Match: *`` for a new key, ``If-Match``
        on the ETag otherwise -- so it fails when the key changed meanwhile:
        then the header is read again and the write retried.  A known
        ``created`` and the right event (set or update) need no other
        request.
        """
        recorded = self._recorded_key(name, key)
        for attempt in range(CONFLICT_RETRIES):
            now = time.time()
            mode: Any
            if old is None:
                written = metadata if metadata is not None else {}
                created = now
                mode = "create"
            else:
                written = metadata if metadata is not None else old.metadata
                created = old.created if old.created is not None else now
                # A header just read and metadata given: the old version
                # only tells ``created``; overwrite whatever is there.
                conditional = (metadata is None or guessed) and old.etag
                mode = {"e_tag": old.etag} if conditional else "overwrite"
            header = codec.pack_header(written, created, now, recorded)
            try:
                etag = self._put(name, key, header + data, mode=mode)
            except Exception as error:
                if not _is_conflict(error):
                    raise
                old, guessed = self._header_or_none(name, key), False
                _backoff(attempt)
                continue
            self._cache_written(name, key, etag, written, created, now, len(header), len(data))
            return mode != "create", written
        raise StoreError("gave up writing {!r}: {} conflicting writers in a row".format(key, CONFLICT_RETRIES))

    def _cache_written(self, name: str, key: str, etag: Optional[str], metadata: Dict[str, Any], created: float,
                       modified: float, offset: int, size: int) -> None:
        if etag is not None:
            self._remember_header(name, _Header(metadata, created, modified, etag, offset, size,
                                                self._recorded_key(name, key)))

    def set(self, key: str, value: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Set the data and metadata of a key, in one object written at once.

        Small values are one conditional PUT; values over 4 MiB a multipart
        upload that becomes visible only when complete (see "Costs" in the
        module documentation).  The key's creation time is kept.
        """
        stream, metadata, size, opened = value_parts(value)
        try:
            existed, written = self._store_data(key, stream, buffer_size, metadata, -1 if size is None else size)
        finally:
            if opened:
                cast(Any, stream).close()
        self._emit_write(key, existed, written)

    def set_data(self, key: str, data: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Replace the data of a key, keeping its metadata.

        The object is rewritten whole: one conditional PUT when this store
        object knows the key's current version, else the header is read
        first.
        """
        existed, written = self._store_data(key, data, buffer_size, None, -1)
        self._emit_write(key, existed, written)

    def _rewrite_metadata(self, key: str, change: Any) -> Tuple[bool, Dict[str, Any]]:
        """Rewrite a key's object with new metadata and the same data.

        ``change(old_metadata or None)`` returns the new metadata (or raises
        KeyError for a missing key).
        """
        obstore = _obstore()
        name = self._name(key)
        self._remember(name)
        for attempt in range(CONFLICT_RETRIES):
            try:
                result = self._call(obstore.get, name, key=key)
            except KeyError:
                metadata = change(None)
                now = time.time()
                header = codec.pack_header(metadata, now, now, self._recorded_key(name, key))
                try:
                    etag = self._put(name, key, header, mode="create")
                except Exception as error:
                    if not _is_conflict(error):
                        raise
                    _backoff(attempt)
                    continue
                self._cache_written(name, key, etag, metadata, now, now, len(header), 0)
                return False, metadata
            meta = result.meta
            object_size = meta["size"]
            now = time.time()
            if object_size <= SINGLE_PUT_LIMIT:
                raw = bytes(result.bytes())
                old = self._whole(raw, meta, object_size, name, key)
                metadata = change(old.metadata)
                created = old.created if old.created is not None else now
                header = codec.pack_header(metadata, created, now, self._recorded_key(name, key))
                mode = {"e_tag": meta["e_tag"]} if meta["e_tag"] else "overwrite"
                try:
                    etag = self._put(name, key, header + raw[old.offset:], mode=mode)
                except Exception as error:
                    if not _is_conflict(error):
                        raise
                    _backoff(attempt)
                    continue
                self._cache_written(name, key, etag, metadata, created, now, len(header), old.size)
                return True, metadata
            # Large: stream the old data into a new multipart upload.
            reader = _ChunkReader(iter(result.stream(min_chunk_size=READ_CHUNK)), object_size, name=name)
            prefix = _read_exactly(reader, codec.PREFIX_SIZE)
            offset = codec.header_length(prefix)
            if offset is None:
                old = self._whole(prefix, meta, object_size, name, key)
                data_stream: Any = _ChunkReader(_chain(prefix, reader), object_size, name=name)
            else:
                raw = prefix + _read_exactly(reader, offset - len(prefix))
                old = self._whole(raw, meta, object_size, name, key)
                data_stream = reader
            metadata = change(old.metadata)
            created = old.created if old.created is not None else now
            header = codec.pack_header(metadata, created, now, self._recorded_key(name, key))
            with store_progress(self, key, copy_metadata(metadata), "Rewriting {}".format(key),
                                old.size) as progress:
                etag = self._put_stream(name, key, self._body(header, [], data_stream, 0, READ_CHUNK, progress))
            self._cache_written(name, key, etag, metadata, created, now, len(header), old.size)
            return True, metadata
        raise StoreError("gave up writing {!r}: {} conflicting writers in a row".format(key, CONFLICT_RETRIES))

    def set_metadata(self, key: str, metadata: Dict[str, Any]) -> None:
        """Replace the metadata of a key, keeping its data.

        The object is rewritten: the data passes through the client
        (streamed; see "Costs" in the module documentation).
        """
        existed, written = self._rewrite_metadata(key, lambda old: metadata)
        self._emit_write(key, existed, written)

    def update_metadata(self, key: str, metadata: Dict[str, Any]) -> None:
        """Merge new values into the metadata of a key.

        A read-modify-write made safe by a conditional PUT: concurrent
        updates of a small value, from any number of processes, lose nothing
        (see "Costs" in the module documentation for large values).
        """
        def merge(old: Optional[Dict[str, Any]]) -> Dict[str, Any]:
            if old is None:
                raise KeyError(key)
            merged = copy_metadata(old)
            merged.update(metadata)
            return merged

        existed, written = self._rewrite_metadata(key, merge)
        self._emit_write(key, existed, written)

    def delete(self, key: str) -> None:
        """Delete a key (a HEAD and a DELETE; a ranged GET of the header
        instead of the HEAD when the event's metadata is wanted)."""
        obstore = _obstore()
        name = self._name(key)
        if is_listened(self.event_manager, StoreDeleteEvent) or self._undo is not None:
            metadata = self._read_header(name, key).metadata
        else:
            self._call(obstore.head, name, key=key)
            metadata = None
        self._remember(name)
        self._call(obstore.delete, name, key=key)
        with self._cache_lock:
            self._cache.pop(name, None)
        self._emit_delete(key, metadata)

    # -- maintenance -----------------------------------------------------------

    def abort_abandoned_uploads(self, older_than: float = 86400.0) -> int:
        """Abort the unfinished multipart uploads of this store's objects.

        A failed upload is aborted by the store at once; one whose process
        died cannot be, and its parts stay (invisible, but billed) until
        aborted.  obstore has no call for this, so the store signs the
        requests itself (with the access keys given to :meth:`connect` or
        found in the environment), or uses boto3 (for a boto3 session).  A
        lifecycle rule on the bucket does the same job on AWS.

        Parameters
        ----------
        older_than : float, optional
            Only uploads started at least this many seconds ago are aborted
            (default one day), so uploads in progress elsewhere survive.

        Returns
        -------
        int
            The number of uploads aborted.

        Raises
        ------
        StoreError
            If the uploads cannot be listed or aborted.
        """
        if not isinstance(older_than, (int, float)) or older_than < 0:
            raise ValueError("older_than must be a number of seconds >= 0, got {!r}".format(older_than))
        if self._client is None:
            raise StoreError("the store is not connected: call connect() first")
        cutoff = time.time() - older_than
        prefix = self._values_prefix
        region = self._region or "us-east-1"
        if self._credentials.get("access_key_id") and self._credentials.get("secret_access_key"):
            endpoint = self.endpoint_url or "https://s3.{}.amazonaws.com".format(region)
            uploads: List[Tuple[str, str, float]] = []
            markers: Optional[Tuple[str, str]] = ("", "")
            while markers is not None:
                query = [("uploads", ""), ("prefix", prefix)]
                if markers[0]:
                    query += [("key-marker", markers[0]), ("upload-id-marker", markers[1])]
                status, text = _signed_request(endpoint, region, self._credentials, "GET", "/" + self.bucket, query)
                if status >= 300:
                    raise StoreError("could not list the uploads of bucket {!r}: HTTP {} {}".format(
                        self.bucket, status, text[:500]))
                found, markers = _parse_uploads(text)
                uploads.extend(found)
            aborted = 0
            for name, upload_id, started in uploads:
                if started <= cutoff and name.startswith(prefix):
                    status, text = _signed_request(endpoint, region, self._credentials, "DELETE",
                                                   "/{}/{}".format(self.bucket, name), [("uploadId", upload_id)])
                    if status >= 300 and status != 404:
                        raise StoreError("could not abort an upload of {!r}: HTTP {} {}".format(
                            name, status, text[:500]))
                    aborted += 1
            return aborted
        try:
            import boto3  # type: ignore[import-not-found, import-untyped, unused-ignore]
        except ImportError:
            raise StoreError("aborting uploads needs the access keys (a dict given to connect(), or "
                             "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) or boto3 (pip install boto3)") from None
        session = self._session or boto3.session.Session()
        client = session.client("s3", endpoint_url=self.endpoint_url, region_name=self._region)
        aborted = 0
        paginator = client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                if upload["Initiated"].timestamp() <= cutoff:
                    client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                    aborted += 1
        return aborted

    # -- transactions ----------------------------------------------------------

    def _begin_transaction(self) -> None:
        """Start an undo log of server-side copies."""
        self._undo = {}
        self._undo_thread = threading.get_ident()
        self._tx_id = uuid.uuid4().hex

    def _remember(self, name: str) -> None:
        """Inside a transaction, copy an object aside before its first write."""
        undo = self._undo
        if undo is None or self._undo_thread != threading.get_ident() or name in undo:
            return
        backup = "{}{}/{}".format(self._tx_prefix, self._tx_id, len(undo))
        try:
            self._call(_obstore().copy, name, backup)
        except KeyError:
            undo[name] = None
        else:
            undo[name] = backup

    def _drop_backups(self, undo: Dict[str, Optional[str]]) -> None:
        backups = [backup for backup in undo.values() if backup is not None]
        if backups:
            try:
                self._call(_obstore().delete, backups)
            except Exception as error:
                logger.warning("could not delete transaction copies under %s: %s", self._tx_prefix, error)

    def _commit_transaction(self) -> None:
        """Keep the writes; delete the copies."""
        undo, self._undo = self._undo or {}, None
        self._drop_backups(undo)

    def _rollback_transaction(self) -> None:
        """Restore every key the transaction touched from its copy."""
        undo, self._undo = self._undo or {}, None
        obstore = _obstore()
        for name, backup in undo.items():
            if backup is None:
                self._call(obstore.delete, name)
            else:
                self._call(obstore.copy, backup, name)
            with self._cache_lock:
                self._cache.pop(name, None)
        self._drop_backups(undo)


class _MissingBucket(Exception):
    pass


class _Aborted(Exception):
    """Passed to an upload whose parts could not be produced."""


_END = object()


def _is_conflict(error: BaseException) -> bool:
    name = type(error).__name__
    return name in ("PreconditionError", "AlreadyExistsError")


def _backoff(attempt: int) -> None:
    # Contention between writers: wait a random, growing moment before the
    # next attempt so the racers spread out.
    time.sleep(random.uniform(0, min(0.2, 0.002 * (2 ** min(attempt, 7)))))


def _corrupt(name: str, key: str, problem: str) -> StoreError:
    """The error for an object whose header is damaged (naming the key)."""
    if key == name:  # a hashed name read for its recorded key
        return StoreError("object {!r} is not a valid value: {}".format(name, problem))
    return StoreError("the value of key {!r} (object {!r}) is not a valid value: {}".format(key, name, problem))


def _read_exactly(reader: Any, size: int) -> bytes:
    parts = []
    while size > 0:
        piece = reader.read(size)
        if not piece:
            break
        parts.append(piece)
        size -= len(piece)
    return b"".join(parts)


def _chain(first: bytes, reader: Any) -> Iterator[bytes]:
    if first:
        yield first
    while True:
        piece = reader.read(READ_CHUNK)
        if not piece:
            return
        yield piece


def _signed_request(endpoint: str, region: str, credentials: Dict[str, str], method: str, path: str,
                    query: Optional[List[Tuple[str, str]]] = None, body: bytes = b"") -> Tuple[int, str]:
    """Make one AWS Signature V4 signed request (for the few calls obstore
    lacks); return the status and the body text.

    ``path`` is the unencoded ``/bucket/object`` path.
    """
    parsed = urllib.parse.urlparse(endpoint)
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    payload_hash = hashlib.sha256(body).hexdigest()
    headers = {"host": parsed.netloc, "x-amz-content-sha256": payload_hash, "x-amz-date": stamp}
    if credentials.get("session_token"):
        headers["x-amz-security-token"] = credentials["session_token"]
    uri = urllib.parse.quote((parsed.path.rstrip("/") or "") + path, safe="/")
    query_text = "&".join(
        "{}={}".format(urllib.parse.quote(name, safe="-_.~"), urllib.parse.quote(value, safe="-_.~"))
        for name, value in sorted(query or []))
    names = sorted(headers)
    canonical = "\n".join([
        method, uri, query_text, "".join("{}:{}\n".format(name, headers[name].strip()) for name in names),
        ";".join(names), payload_hash])
    scope = "{}/{}/s3/aws4_request".format(day, region)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])

    def mac(secret: bytes, text: str) -> bytes:
        return hmac.new(secret, text.encode(), hashlib.sha256).digest()

    signing_key = mac(mac(mac(mac(("AWS4" + credentials["secret_access_key"]).encode(), day), region), "s3"),
                      "aws4_request")
    signature = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = "AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={}, Signature={}".format(
        credentials["access_key_id"], scope, ";".join(names), signature)
    connection_class = http.client.HTTPSConnection if parsed.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parsed.hostname or "", parsed.port, timeout=30)
    try:
        connection.request(method, uri + ("?" + query_text if query_text else ""), body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    except OSError as error:
        raise StoreError("cannot reach {}: {}".format(endpoint, error)) from None
    finally:
        connection.close()


def _signed_create_bucket(endpoint: str, bucket: str, region: str, credentials: Dict[str, str]) -> None:
    """Create a bucket with one signed request (no boto3 needed)."""
    body = b""
    if region != "us-east-1":
        body = ("<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                "<LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>".format(region)).encode()
    status, text = _signed_request(endpoint, region, credentials, "PUT", "/" + bucket, body=body)
    if status >= 300 and "BucketAlreadyOwnedByYou" not in text:
        raise StoreError("could not create bucket {!r} at {}: HTTP {} {}".format(bucket, endpoint, status, text[:500]))


def _parse_uploads(text: str) -> Tuple[List[Tuple[str, str, float]], Optional[Tuple[str, str]]]:
    """Parse a ListMultipartUploads answer: uploads and the next markers."""
    import xml.etree.ElementTree as ElementTree

    root = ElementTree.fromstring(text)

    def child(element: Any, name: str) -> str:
        for item in element:
            if item.tag.rsplit("}", 1)[-1] == name:
                return item.text or ""
        return ""

    uploads = []
    for element in root:
        if element.tag.rsplit("}", 1)[-1] != "Upload":
            continue
        initiated = child(element, "Initiated").split(".")[0].rstrip("Z")
        try:
            started = datetime.datetime.strptime(initiated, "%Y-%m-%dT%H:%M:%S").replace(
                tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            started = 0.0
        uploads.append((child(element, "Key"), child(element, "UploadId"), started))
    following = None
    if child(root, "IsTruncated").lower() == "true":
        following = (child(root, "NextKeyMarker"), child(root, "NextUploadIdMarker"))
    return uploads, following

"""Tests of SimpleAuthStore: the bundled conformance mixins over dict, sqlite
and filesystem children, authentication, permission gates on every method,
hidden user records and the encoders."""
import hashlib
import io
import os
import shutil
import tempfile

import pytest

from .composite_support import CHILD_KINDS, data, make_child, make_mixin_classes

from encore.events.event_manager import EventManager
from encore.storage import simple_auth_store
from encore.storage.abstract_store import AuthorizationError, StoreError
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.events import StoreDeleteEvent, StoreSetEvent, StoreUpdateEvent
from encore.storage.simple_auth_store import (
    AuthenticationError,
    SimpleAuthStore,
    create_user_record,
    make_encoder,
    make_pbkdf2_encoder,
    sha1_hasher,
)
from encore.storage.tests.abstract_test import (
    StoreLargeValueTestMixin,
    StoreReadTestMixin,
    StoreWriteTestMixin,
    populate,
    read_fixture,
    write_fixture,
)

# Few iterations: the tests check behaviour, not the cost of guessing.
ENCODER = make_pbkdf2_encoder(b"test salt 123456", iterations=1000)
CREDENTIALS = {"username": "alice", "password": "correct horse"}


def put(store, key, value, metadata):
    store.set(key, (io.BytesIO(value), metadata))


# ---------------------------------------------------------------------------
# The conformance mixins
# ---------------------------------------------------------------------------

class _AuthCase(object):
    """setUp: a wrapped store of ``kind`` holding alice's (hidden) record and
    what :meth:`fill` adds, wrapped and connected as alice.  With
    ``shared_children`` the wrapped store is built and filled once per class
    (for mixins that only read)."""

    kind = "dict"
    shared_children = False

    @classmethod
    def _build_children(cls, target, add_cleanup):
        directory = tempfile.mkdtemp(prefix="encore_auth_")
        add_cleanup(shutil.rmtree, directory, True)
        target.event_manager = EventManager()
        target.inner = make_child(cls.kind, directory, "inner", target.event_manager)
        add_cleanup(target.inner.disconnect)
        create_user_record(target.inner, "alice", "correct horse", ENCODER)
        cls.fill(target.inner)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls.shared_children:
            cls._build_children(cls, cls.addClassCleanup)

    def setUp(self):
        if not self.shared_children:
            self._build_children(self, self.addCleanup)
        self.store = SimpleAuthStore(self.inner, ENCODER, event_manager=self.event_manager)
        self.store.connect(dict(CREDENTIALS))
        self.addCleanup(self.store.disconnect)

    @classmethod
    def fill(cls, inner):
        pass


class _AuthRead(_AuthCase, StoreReadTestMixin):
    shared_children = True

    @classmethod
    def fill(cls, inner):
        populate(inner, read_fixture())


class _AuthWrite(_AuthCase, StoreWriteTestMixin):
    @classmethod
    def fill(cls, inner):
        populate(inner, write_fixture())


class _AuthLarge(_AuthCase, StoreLargeValueTestMixin):
    # Twice the allowed allocation peak: holding a value whole is caught.
    large_value_size = 16 << 20


globals().update(make_mixin_classes(
    "TestSimpleAuth", _AuthCase, _AuthRead, _AuthWrite, _AuthLarge))


# ---------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------

@pytest.fixture(params=CHILD_KINDS)
def kind(request):
    return request.param


@pytest.fixture
def inner(kind, tmp_path, event_manager):
    store = make_child(kind, str(tmp_path), "inner", event_manager)
    create_user_record(store, "alice", "correct horse", ENCODER)
    put(store, "doc", b"document", {"kind": "doc"})
    put(store, "other", b"other", {"kind": "other"})
    yield store
    store.disconnect()


@pytest.fixture
def auth(inner, event_manager):
    store = SimpleAuthStore(inner, ENCODER, event_manager=event_manager)
    store.connect(dict(CREDENTIALS))
    yield store
    store.disconnect()


def test_connect_with_the_right_password(auth):
    assert auth.is_connected()
    assert auth.username == "alice"
    assert data(auth.get_data("doc")) == b"document"
    assert auth.check_permissions() == {"connect", "exists", "get", "set", "delete"}


@pytest.mark.parametrize("credentials", [
    {"username": "alice", "password": "wrong"},
    {"username": "alice", "password": ""},
    {"username": "mallory", "password": "correct horse"},
    {"username": "alice"},
    {"password": "correct horse"},
    None,
    ("alice", "correct horse"),
    {"username": 42, "password": "x"},
    {"username": "alice", "password": 42},
])
def test_connect_refuses_bad_credentials(inner, event_manager, credentials):
    store = SimpleAuthStore(inner, ENCODER, event_manager=event_manager)
    with pytest.raises(AuthenticationError):
        store.connect(credentials)
    assert not store.is_connected()
    assert store.check_permissions() == set()
    assert not store.exists("doc")
    with pytest.raises(KeyError):
        store.get("doc")
    assert list(store.query_keys()) == []


def test_authentication_error_is_a_store_error():
    assert issubclass(AuthenticationError, AuthorizationError)
    assert issubclass(AuthenticationError, StoreError)


def test_password_bytes_and_unicode(inner, event_manager):
    create_user_record(inner, "zoë", "pässwörd", ENCODER)
    store = SimpleAuthStore(inner, ENCODER, event_manager=event_manager)
    store.connect({"username": "zoë", "password": "pässwörd".encode("utf-8")})
    assert store.exists("doc")


def test_changed_or_removed_record_takes_effect_at_once(auth, inner):
    create_user_record(inner, "alice", "new password", ENCODER)
    assert not auth.exists("doc")
    with pytest.raises(KeyError):
        auth.get("doc")
    create_user_record(inner, "alice", "correct horse", ENCODER)
    assert auth.exists("doc")
    inner.delete(".user_alice")
    assert auth.check_permissions() == set()


def test_comparison_is_constant_time(auth, monkeypatch):
    calls = []
    original = simple_auth_store.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(simple_auth_store.hmac, "compare_digest", spy)
    assert auth.exists("doc")
    assert calls and all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in calls)


def test_disconnect_keeps_the_store_and_allows_reconnecting(auth, inner):
    auth.disconnect()
    assert auth.store is inner
    assert not auth.is_connected()
    assert not auth.exists("doc")
    auth.connect(dict(CREDENTIALS))
    assert auth.exists("doc")


def test_connect_reaches_the_wrapped_store(event_manager):
    inner = DictMemoryStore(event_manager=event_manager)
    create_user_record(inner, "alice", "correct horse", ENCODER)
    store = SimpleAuthStore(inner, ENCODER, event_manager=event_manager)
    store.connect(dict(CREDENTIALS))
    assert inner.is_connected()
    store.disconnect()
    assert not inner.is_connected()
    with pytest.raises(AuthenticationError):
        store.connect({"username": "alice", "password": "bad"})
    assert not inner.is_connected()   # left as it was found


def test_info_works_with_and_without_a_user(inner, event_manager):
    store = SimpleAuthStore(inner, ENCODER, event_manager=event_manager)
    assert store.info() == {"readonly": False, "authorizing": False,
                            "type": "SimpleAuthStore", "user": None}
    store.connect(dict(CREDENTIALS))
    assert store.info()["user"] == "alice"


# ---------------------------------------------------------------------------
# User records
# ---------------------------------------------------------------------------

def test_records_in_the_wrapped_store_are_hidden(auth, inner):
    record = ".user_alice"
    assert inner.exists(record)
    assert not auth.exists(record)
    for read in (auth.get, auth.get_data, auth.get_metadata, auth.to_bytes,
                 lambda key: auth.get_data_range(key, 0, 4),
                 lambda key: list(auth.multiget_data([key])),
                 lambda key: list(auth.multiget_metadata([key]))):
        with pytest.raises(KeyError):
            read(record)
    assert record not in set(auth.query_keys())
    assert record not in dict(auth.query())
    assert list(auth.glob(".user_*")) == []
    assert sorted(auth.glob("*")) == ["doc", "other"]


@pytest.mark.parametrize("write", [
    lambda s, k: s.set(k, (io.BytesIO(b"forged"), {})),
    lambda s, k: s.set_data(k, io.BytesIO(b"forged")),
    lambda s, k: s.set_metadata(k, {}),
    lambda s, k: s.update_metadata(k, {"a": 1}),
    lambda s, k: s.from_bytes(k, b"forged"),
    lambda s, k: s.delete(k),
    lambda s, k: s.multiset([k], [(io.BytesIO(b"forged"), {})]),
])
def test_records_cannot_be_written_through_the_view(auth, inner, write):
    record = inner.to_bytes(".user_alice")
    for key in (".user_alice", ".user_mallory"):
        with pytest.raises(AuthenticationError):
            write(auth, key)
    assert inner.to_bytes(".user_alice") == record
    assert not inner.exists(".user_mallory")


def test_records_in_a_separate_store(event_manager):
    users = DictMemoryStore(event_manager=event_manager)
    data_store = DictMemoryStore(event_manager=event_manager)
    create_user_record(users, "alice", "correct horse", ENCODER, user_key_path="u/")
    store = SimpleAuthStore(data_store, ENCODER, user_key_path="u/", user_key_store=users,
                            event_manager=event_manager)
    store.connect(dict(CREDENTIALS))
    # Keys with the prefix in the data store are ordinary keys.
    store.set("u/notes", (io.BytesIO(b"n"), {}))
    assert store.exists("u/notes") and list(store.glob("u/*")) == ["u/notes"]
    assert not store.exists("u/alice")
    assert users.exists("u/alice") and not data_store.exists("u/alice")


def test_create_user_record_validation(event_manager):
    store = DictMemoryStore(event_manager=event_manager)
    assert create_user_record(store, "bob", b"pw", ENCODER, user_key_path="users/") == "users/bob"
    assert store.to_bytes("users/bob") == ENCODER(b"pw")
    with pytest.raises(ValueError):
        create_user_record(store, "", "pw", ENCODER)
    with pytest.raises(TypeError):
        create_user_record(store, "bob", "pw", lambda password: 12345)


# ---------------------------------------------------------------------------
# Permission gates
# ---------------------------------------------------------------------------

class LimitedAuthStore(SimpleAuthStore):
    """Grants an authenticated user only ``granted`` (per key for keys
    starting with ``'secret'``: nothing but 'connect')."""

    granted = frozenset({"connect", "exists", "get", "set", "delete"})

    def check_permissions(self, key=None):
        permissions = super().check_permissions(key) & set(self.granted)
        if key is not None and key.startswith("secret"):
            permissions &= {"connect"}
        return permissions


def _limited(inner, event_manager, granted):
    store = LimitedAuthStore(inner, ENCODER, event_manager=event_manager)
    store.granted = frozenset(granted)
    store.connect(dict(CREDENTIALS))
    return store


READS = {
    "get": lambda s, k, d: s.get(k),
    "get_data": lambda s, k, d: s.get_data(k),
    "get_data_range": lambda s, k, d: s.get_data_range(k, 0, 2),
    "get_metadata": lambda s, k, d: s.get_metadata(k),
    "to_bytes": lambda s, k, d: s.to_bytes(k),
    "to_file": lambda s, k, d: s.to_file(k, os.path.join(d, "out")),
    "multiget": lambda s, k, d: list(s.multiget([k])),
    "multiget_data": lambda s, k, d: list(s.multiget_data([k])),
    "multiget_metadata": lambda s, k, d: list(s.multiget_metadata([k])),
}

WRITES = {
    "set": lambda s, k, d: s.set(k, (io.BytesIO(b"x"), {"w": 1})),
    "set_data": lambda s, k, d: s.set_data(k, io.BytesIO(b"x")),
    "set_metadata": lambda s, k, d: s.set_metadata(k, {"w": 1}),
    "update_metadata": lambda s, k, d: s.update_metadata(k, {"w": 1}),
    "from_bytes": lambda s, k, d: s.from_bytes(k, b"x"),
    "from_file": lambda s, k, d: s.from_file(k, __file__),
    "multiset": lambda s, k, d: s.multiset([k], [(io.BytesIO(b"x"), {})]),
    "multiset_data": lambda s, k, d: s.multiset_data([k], [io.BytesIO(b"x")]),
    "multiset_metadata": lambda s, k, d: s.multiset_metadata([k], [{"w": 1}]),
    "multiupdate_metadata": lambda s, k, d: s.multiupdate_metadata([k], [{"w": 1}]),
}


def _snapshot(store):
    return {key: (store.to_bytes(key), store.get_metadata(key)) for key in store.query_keys()}


@pytest.mark.parametrize("name", sorted(READS))
def test_reads_need_get_permission(inner, event_manager, tmp_path, name):
    store = _limited(inner, event_manager, {"connect", "exists", "set", "delete"})
    assert store.exists("doc")
    with pytest.raises(AuthenticationError):
        READS[name](store, "doc", str(tmp_path))


@pytest.mark.parametrize("name", sorted(READS))
def test_reads_without_exists_permission_see_no_key(inner, event_manager, tmp_path, name):
    store = _limited(inner, event_manager, {"connect", "get", "set", "delete"})
    with pytest.raises(KeyError):
        READS[name](store, "doc", str(tmp_path))


@pytest.mark.parametrize("name", sorted(WRITES))
def test_writes_need_set_permission(inner, event_manager, tmp_path, record_events, name):
    store = _limited(inner, event_manager, {"connect", "exists", "get", "delete"})
    before = _snapshot(inner)
    with record_events(store) as recorder:
        for key in ("doc", "new_key"):
            with pytest.raises((AuthenticationError, KeyError)) as caught:
                WRITES[name](store, key, str(tmp_path))
            if key == "doc" or "update" not in name:
                assert caught.type is AuthenticationError
    assert _snapshot(inner) == before
    assert recorder.modifications() == []


def test_delete_needs_delete_permission(inner, event_manager):
    store = _limited(inner, event_manager, {"connect", "exists", "get", "set"})
    with pytest.raises(AuthenticationError):
        store.delete("doc")
    assert inner.exists("doc")
    store = _limited(inner, event_manager, {"connect", "get", "set", "delete"})
    with pytest.raises(KeyError):
        store.delete("doc")
    assert inner.exists("doc")


# Every public method of the store, by the gate it passes.
LISTINGS = {"exists", "query", "query_keys", "glob"}
OTHER_GATED = {"delete", "transaction"}
UNGATED = {"connect", "disconnect", "is_connected", "info", "check_permissions"}


def test_every_public_method_is_classified():
    public = {name for name in dir(SimpleAuthStore)
              if not name.startswith("_") and callable(getattr(SimpleAuthStore, name))}
    # A new public method must be added to one of the tables (and gated).
    assert public == set(READS) | set(WRITES) | LISTINGS | OTHER_GATED | UNGATED


def test_transaction_needs_a_connected_user(inner, event_manager):
    import threading

    store = SimpleAuthStore(inner, ENCODER, event_manager=event_manager)
    with pytest.raises(AuthenticationError):
        store.transaction("not connected")
    with pytest.raises(AuthenticationError):
        store.multiset_metadata([], [])       # runs in a transaction too
    # Nothing was locked: another thread can run a transaction on the
    # wrapped store.
    done = threading.Event()

    def other():
        with inner.transaction("other"):
            done.set()

    thread = threading.Thread(target=other, daemon=True)
    thread.start()
    assert done.wait(10)
    thread.join(10)
    assert not thread.is_alive()
    store.connect(dict(CREDENTIALS))
    with store.transaction("connected"):
        store.set("in_transaction", (io.BytesIO(b"t"), {}))
    assert inner.exists("in_transaction")
    with store.transaction(notes="Encore's keyword"):
        store.set("by_keyword", (io.BytesIO(b"k"), {}))
    assert inner.exists("by_keyword")


def test_queries_need_exists_permission(inner, event_manager):
    store = _limited(inner, event_manager, {"connect", "get", "set", "delete"})
    assert not store.exists("doc")
    assert list(store.query()) == []
    assert list(store.query_keys(kind="doc")) == []
    assert list(store.glob("*")) == []
    store = _limited(inner, event_manager, {"connect", "exists"})
    assert sorted(store.query_keys()) == ["doc", "other"]


def test_per_key_permissions_filter_queries(inner, event_manager):
    put(inner, "secret_plan", b"s", {"kind": "doc"})
    store = _limited(inner, event_manager, {"connect", "exists", "get", "set", "delete"})
    assert store.exists("doc") and not store.exists("secret_plan")
    assert sorted(store.query_keys()) == ["doc", "other"]
    assert [key for key, _ in store.query(kind="doc")] == ["doc"]
    assert list(store.glob("secret*")) == []
    with pytest.raises(KeyError):
        store.get("secret_plan")
    with pytest.raises(AuthenticationError):
        store.set("secret_new", (io.BytesIO(b""), {}))


def test_connect_needs_connect_permission(inner, event_manager):
    store = LimitedAuthStore(inner, ENCODER, event_manager=event_manager)
    store.granted = frozenset({"exists", "get", "set", "delete"})
    with pytest.raises(AuthenticationError):
        store.connect(dict(CREDENTIALS))
    assert not store.is_connected()


# ---------------------------------------------------------------------------
# Events and transactions
# ---------------------------------------------------------------------------

def test_one_event_per_write_with_the_auth_store_as_source(auth, record_events):
    with record_events(auth) as recorder:
        auth.set("k", (io.BytesIO(b"a"), {"x": 1}))
        auth.set_data("k", io.BytesIO(b"b"))
        auth.update_metadata("k", {"y": 2})
        auth.delete("k")
    assert [(type(e), e.key, e.metadata) for e in recorder.modifications()] == [
        (StoreSetEvent, "k", {"x": 1}),
        (StoreUpdateEvent, "k", {"x": 1}),
        (StoreUpdateEvent, "k", {"x": 1, "y": 2}),
        (StoreDeleteEvent, "k", {"x": 1, "y": 2}),
    ]


def test_rollback_reaches_the_wrapped_store(event_manager):
    inner = DictMemoryStore(event_manager=event_manager)
    create_user_record(inner, "alice", "correct horse", ENCODER)
    put(inner, "k", b"k", {"k": 1})
    store = SimpleAuthStore(inner, ENCODER, event_manager=event_manager)
    store.connect(dict(CREDENTIALS))
    with pytest.raises(RuntimeError):
        with store.transaction("failing"):
            store.delete("k")
            store.set("new", (io.BytesIO(b"n"), {}))
            raise RuntimeError("boom")
    assert inner.get_metadata("k") == {"k": 1} and not inner.exists("new")


# ---------------------------------------------------------------------------
# Encoders
# ---------------------------------------------------------------------------

def test_sha1_hasher_and_make_encoder():
    assert sha1_hasher(b"abc") == hashlib.sha1(b"abc").digest()
    encoder = make_encoder(b"salt")
    assert encoder(b"password") == hashlib.sha1(b"saltpassword").digest()
    assert make_encoder(b"s", hasher=lambda b: b[::-1])(b"pw") == b"wps"
    assert make_encoder("salt")(b"password") == encoder(b"password")


def test_legacy_encoder_records_keep_working(event_manager):
    inner = DictMemoryStore(event_manager=event_manager)
    legacy = make_encoder(b"old salt")
    # A record as Encore wrote it: the raw SHA-1 digest of salt + password.
    put(inner, ".user_carol", hashlib.sha1(b"old salt" + b"pw").digest(), {})
    store = SimpleAuthStore(inner, legacy, event_manager=event_manager)
    store.connect({"username": "carol", "password": "pw"})
    assert store.is_connected()


def test_pbkdf2_encoder():
    salt = b"0123456789abcdef"
    encoder = make_pbkdf2_encoder(salt, iterations=10)
    assert encoder(b"pw") == hashlib.pbkdf2_hmac("sha256", b"pw", salt, 10)
    assert encoder(b"pw") != make_pbkdf2_encoder(b"another salt!!", iterations=10)(b"pw")
    assert len(make_pbkdf2_encoder(salt, 10, "sha512")(b"pw")) == 64
    with pytest.raises(TypeError):
        make_pbkdf2_encoder("text salt")
    with pytest.raises(ValueError):
        make_pbkdf2_encoder(b"short")
    with pytest.raises(ValueError):
        make_pbkdf2_encoder(salt, iterations=0)
    with pytest.raises(ValueError):
        make_pbkdf2_encoder(salt, hash_name="no-such-hash")
    assert simple_auth_store.DEFAULT_PBKDF2_ITERATIONS >= 100_000

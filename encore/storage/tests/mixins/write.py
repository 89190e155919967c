"""The write mixin (Encore 0.8's fixture contract): :class:`StoreWriteTestMixin`."""
from __future__ import annotations

import os
import shutil
import time
from typing import Tuple

from ._support import (
    _query_text,
    create_file_like_data,
    LARGE_SIZE,
    PatternFile,
    read_fixture,
    _StoreTestHelpers,
    temp_dir,
)


class StoreWriteTestMixin(_StoreTestHelpers):
    """Tests of the write API of a store.

    Fixture contract: ``setUp`` sets ``self.store`` to a connected writable
    store holding (see :func:`write_fixture`):

    * ``'test1'``: as in :class:`StoreReadTestMixin`;
    * ``'existing_key0'`` to ``'existing_key9'``: data
      ``b'existing_value<i>'``, metadata ``{'meta': True, 'meta1': -i}``;

    and no key ``'test3'`` nor any key starting with ``'set_key'``; no other
    key has ``meta=True``.  Times (``created``/``modified``) are epoch
    seconds.

    Attributes
    ----------
    resolution : str
        ``'arbitrary'`` (default): times are compared with :func:`time.time`
        read just before and after the write; ``'second'``: the window is
        widened to whole seconds.
    """

    def _existing(self, i: int) -> Tuple[bytes, dict]:
        return ("existing_value%d" % i).encode("ascii"), {"meta": True, "meta1": -i}

    # set

    def test_set(self):
        """set stores data and metadata of a new key and stamps it."""
        before = time.time()
        self.store.set("test3", (create_file_like_data(b"test4"), {"a_str": "test5"}))
        after = time.time()
        value = self.store.get("test3")
        with value as data:
            self._expect(data.read(), b"test4", "test3", "data of get('test3')")
        self._expect(value.metadata, {"a_str": "test5"}, 'test3', "value.metadata of get('test3')")
        self._expect(value.size, 5, 'test3', "value.size of get('test3')")
        self._assert_time_between(value.modified, before, after, "test3", "get('test3').modified")
        if value.created is not None:
            self._assert_time_between(value.created, before, after, "test3", "get('test3').created")

    def test_set_overwrite(self):
        """set replaces both the data and the metadata of an existing key."""
        before = time.time()
        self.store.set("existing_key3", (create_file_like_data(b"new"), {"other": 1}))
        after = time.time()
        value = self.store.get("existing_key3")
        self._expect(
            self._read(value.data),
            b"new",
            'existing_key3', "read(value.data) of get('existing_key3')")
        self._expect(value.metadata, {"other": 1}, 'existing_key3', "value.metadata of get('existing_key3')")
        self._expect(value.size, 3, 'existing_key3', "value.size of get('existing_key3')")
        self._assert_time_between(value.modified, before, after, "existing_key3", "get('existing_key3').modified")
        matching = set(self.store.query_keys(meta=True))
        self.assertNotIn("existing_key3", matching, self._about(
            "existing_key3", "should not match query_keys(meta=True) once its metadata is replaced"))
        self.assertIn("existing_key2", matching, self._about(
            "existing_key2", "should still match query_keys(meta=True)"))

    def test_set_copies_metadata(self):
        """Changing the metadata after set does not change the store."""
        metadata = {"a_list": [1, 2], "a_dict": {"x": "y"}, "a_str": "test5"}
        self.store.set("test3", (create_file_like_data(b"test4"), metadata))
        metadata["a_list"].append(3)
        metadata["a_dict"]["z"] = 1
        metadata["a_str"] = "changed"
        self._expect(
            self.store.get_metadata("test3"),
            {"a_list": [1, 2], "a_dict": {"x": "y"}, "a_str": "test5"},
            'test3', "get_metadata('test3')")

    def test_set_copies(self):
        """Changing the metadata dictionary after set changes nothing stored."""
        metadata = {"a_str": "test5", "an_int": 3}
        self.store.set("test3", (create_file_like_data(b"test4"), metadata))
        metadata["a_str"] = "changed"
        metadata["new"] = True
        del metadata["an_int"]
        self._expect(
            self.store.get_metadata("test3"),
            {"a_str": "test5", "an_int": 3},
            'test3', "get_metadata('test3')")

    def test_set_buffer(self):
        """set with an explicit buffer size of 8000 stores 40,000 bytes intact."""
        data = bytes(range(250)) * 160
        self.store.set("test3", (create_file_like_data(data), {"a": 1}), buffer_size=8000)
        self._expect(self._data("test3"), data, 'test3', "get_data('test3')")
        self._expect(self.store.get("test3").size, 40000, 'test3', "get('test3').size")
        self._expect(self.store.get_metadata("test3"), {"a": 1}, 'test3', "get_metadata('test3')")

    def test_set_value(self):
        """set accepts a value read from the store (copying a key)."""
        self.store.set("test3", self.store.get("test1"))
        self._expect(self._data("test3"), b"test2\n", 'test3', "get_data('test3')")
        self._expect(self.store.get_metadata("test3"), read_fixture()[0][2], 'test3', "get_metadata('test3')")
        self._expect(self._data("test1"), b"test2\n", 'test1', "get_data('test1')")

    def test_set_value_over_itself(self):
        """Setting a key to its own value leaves it intact."""
        self.store.set("existing_key1", self.store.get("existing_key1"))
        self._expect(
            self._data("existing_key1"),
            self._existing(1)[0],
            'existing_key1', "get_data('existing_key1')")
        self._expect(
            self.store.get_metadata("existing_key1"),
            self._existing(1)[1],
            'existing_key1', "get_metadata('existing_key1')")

    def test_set_buffer_size(self):
        """set honours a small buffer size without losing data."""
        data = bytes(range(256)) * 3
        self.store.set("set_key1", (create_file_like_data(data), {}), buffer_size=7)
        self._expect(self._data("set_key1"), data, 'set_key1', "get_data('set_key1')")

    def test_set_empty(self):
        """set stores empty data."""
        self.store.set("set_key1", (create_file_like_data(b""), {"empty": True}))
        self._expect(self._data("set_key1"), b"", 'set_key1', "get_data('set_key1')")
        self._expect(self.store.get("set_key1").size, 0, 'set_key1', "get('set_key1').size")

    def test_set_large(self):
        """set streams a large value (about 50 MB) into the store."""
        self.store.set("set_key_large", (PatternFile(LARGE_SIZE), {"large": True}))
        self._assert_stream_is_pattern(self.store.get_data("set_key_large"), LARGE_SIZE, "set_key_large")
        self._expect(
            self.store.get("set_key_large").size,
            LARGE_SIZE,
            'set_key_large', "get('set_key_large').size")
        self._expect(
            self.store.get_metadata("set_key_large"),
            {"large": True},
            'set_key_large', "get_metadata('set_key_large')")

    # set_data

    def test_set_data(self):
        """set_data replaces the data and keeps the metadata."""
        before = time.time()
        self.store.set_data("existing_key0", create_file_like_data(b"new data"))
        after = time.time()
        value = self.store.get("existing_key0")
        self._expect(
            self._read(value.data),
            b"new data",
            'existing_key0', "read(value.data) of get('existing_key0')")
        self._expect(
            value.metadata,
            self._existing(0)[1],
            'existing_key0', "value.metadata of get('existing_key0')")
        self._expect(value.size, 8, 'existing_key0', "value.size of get('existing_key0')")
        self._assert_time_between(value.modified, before, after, "existing_key0", "get('existing_key0').modified")

    def test_set_data_new(self):
        """set_data of a new key creates it with empty metadata."""
        self.store.set_data("set_key0", create_file_like_data(b"data"))
        self._expect(self._data("set_key0"), b"data", 'set_key0', "get_data('set_key0')")
        self._expect(self.store.get_metadata("set_key0"), {}, 'set_key0', "get_metadata('set_key0')")

    def test_set_data_buffer_size(self):
        """set_data honours a small buffer size without losing data."""
        data = b"0123456789" * 10
        self.store.set_data("existing_key2", create_file_like_data(data), buffer_size=3)
        self._expect(self._data("existing_key2"), data, 'existing_key2', "get_data('existing_key2')")

    def test_set_data_buffer(self):
        """set_data with an explicit buffer size of 8000 stores 40,000 bytes intact."""
        data = bytes(range(200)) * 200
        self.store.set_data("existing_key3", create_file_like_data(data), buffer_size=8000)
        self._expect(self._data("existing_key3"), data, 'existing_key3', "get_data('existing_key3')")
        self._expect(
            self.store.get_metadata("existing_key3"),
            self._existing(3)[1],
            'existing_key3', "get_metadata('existing_key3')")

    def test_set_data_large(self):
        """set_data streams a large value (about 50 MB) into the store."""
        self.store.set_data("existing_key5", PatternFile(LARGE_SIZE))
        self._assert_stream_is_pattern(self.store.get_data("existing_key5"), LARGE_SIZE, "existing_key5")
        self._expect(
            self.store.get_metadata("existing_key5"),
            self._existing(5)[1],
            'existing_key5', "get_metadata('existing_key5')")

    # set_metadata / update_metadata

    def test_set_metadata(self):
        """set_metadata replaces the metadata and keeps the data."""
        before = time.time()
        self.store.set_metadata("existing_key4", {"new": "metadata"})
        after = time.time()
        value = self.store.get("existing_key4")
        self._expect(
            value.metadata,
            {"new": "metadata"},
            'existing_key4', "value.metadata of get('existing_key4')")
        self._expect(
            self._read(value.data),
            self._existing(4)[0],
            'existing_key4', "read(value.data) of get('existing_key4')")
        self._assert_time_between(value.modified, before, after, "existing_key4", "get('existing_key4').modified")
        self.assertNotIn("existing_key4", set(self.store.query_keys(meta=True)),
            msg=self._about(_query_text('query_keys', meta=True), "set(query_keys(meta=True)) should not contain 'existing_key4'"))
        self._expect(
            list(self.store.query_keys(new="metadata")),
            ["existing_key4"],
            _query_text('query_keys', new='metadata'), "list(query_keys(new='metadata'))")

    def test_set_metadata_new(self):
        """set_metadata of a new key creates it with empty data."""
        self.store.set_metadata("set_key0", {"a": 1})
        self._expect(self.store.get_metadata("set_key0"), {"a": 1}, 'set_key0', "get_metadata('set_key0')")
        self._expect(self._data("set_key0"), b"", 'set_key0', "get_data('set_key0')")

    def test_set_metadata_copies(self):
        """Changing the metadata after set_metadata does not change the store."""
        metadata = {"a_list": ["x"], "nested": {"a": [1]}}
        self.store.set_metadata("existing_key1", metadata)
        metadata["a_list"].append("y")
        metadata["nested"]["a"].append(2)
        self._expect(
            self.store.get_metadata("existing_key1"),
            {"a_list": ["x"], "nested": {"a": [1]}},
            'existing_key1', "get_metadata('existing_key1')")

    def test_update_metadata(self):
        """update_metadata merges into the metadata and keeps the data."""
        before = time.time()
        self.store.update_metadata("existing_key6", {"meta": False, "extra": "x"})
        after = time.time()
        value = self.store.get("existing_key6")
        self._expect(
            value.metadata,
            {"meta": False, "meta1": -6, "extra": "x"},
            'existing_key6', "value.metadata of get('existing_key6')")
        self._expect(
            self._read(value.data),
            self._existing(6)[0],
            'existing_key6', "read(value.data) of get('existing_key6')")
        self._assert_time_between(value.modified, before, after, "existing_key6", "get('existing_key6').modified")
        self.assertNotIn("existing_key6", set(self.store.query_keys(meta=True)),
            msg=self._about(_query_text('query_keys', meta=True), "set(query_keys(meta=True)) should not contain 'existing_key6'"))
        self._expect(
            list(self.store.query_keys(extra="x")),
            ["existing_key6"],
            _query_text('query_keys', extra='x'), "list(query_keys(extra='x'))")

    def test_update_metadata_copies(self):
        """Changing the update after update_metadata does not change the store."""
        update = {"a_list": [1]}
        self.store.update_metadata("existing_key7", update)
        update["a_list"].append(2)
        self._expect(
            self.store.get_metadata("existing_key7")["a_list"],
            [1],
            'existing_key7', "get_metadata('existing_key7')['a_list']")

    def test_update_metadata_missing(self):
        """update_metadata of a missing key raises KeyError and creates nothing."""
        with self.assertRaises(KeyError,
                 msg=self._about('set_key0', "update_metadata('set_key0', {'a': 1}) should raise KeyError")):
            self.store.update_metadata("set_key0", {"a": 1})
        self.assertFalse(self.store.exists("set_key0"),
            msg=self._about('set_key0', "exists('set_key0') should be false"))

    # delete

    def test_delete(self):
        """delete removes the key."""
        self.store.delete("existing_key8")
        self.assertFalse(self.store.exists("existing_key8"),
            msg=self._about('existing_key8', "exists('existing_key8') should be false"))
        with self.assertRaises(KeyError,
                 msg=self._about('existing_key8', "get('existing_key8') should raise KeyError")):
            self.store.get("existing_key8")
        self.assertNotIn("existing_key8", set(self.store.query_keys()),
            msg=self._about(_query_text('query_keys'), "set(query_keys()) should not contain 'existing_key8'"))
        self.assertNotIn("existing_key8", set(self.store.query_keys(meta=True)),
            msg=self._about(_query_text('query_keys', meta=True), "set(query_keys(meta=True)) should not contain 'existing_key8'"))
        self.assertTrue(self.store.exists("existing_key7"),
            msg=self._about('existing_key7', "exists('existing_key7') should be true"))

    def test_delete_missing(self):
        """delete of a missing key raises KeyError."""
        with self.assertRaises(KeyError,
                 msg=self._about('set_key0', "delete('set_key0') should raise KeyError")):
            self.store.delete("set_key0")

    def test_delete_then_set(self):
        """A deleted key can be set again."""
        self.store.delete("existing_key9")
        self.store.set("existing_key9", (create_file_like_data(b"again"), {"b": 2}))
        self._expect(self._data("existing_key9"), b"again", 'existing_key9', "get_data('existing_key9')")
        self._expect(
            self.store.get_metadata("existing_key9"),
            {"b": 2},
            'existing_key9', "get_metadata('existing_key9')")

    # multiset and friends

    def test_multiset(self):
        """multiset writes new keys and overwrites existing ones."""
        keys = ["set_key%d" % i for i in range(5)] + ["existing_key0", "existing_key1"]
        values = [
            (create_file_like_data(("set_value%d" % i).encode("ascii")), {"set": i})
            for i in range(7)
        ]
        self.store.multiset(keys, values)
        for i, key in enumerate(keys):
            self._expect(self._data(key), ("set_value%d" % i).encode("ascii"), key, "get_data(key)")
            self._expect(self.store.get_metadata(key), {"set": i}, key, "get_metadata(key)")

    def test_multiset_overwrite(self):
        """multiset over existing_key0..9 replaces their data and metadata."""
        keys = ["existing_key%d" % i for i in range(10)]
        values = [
            (create_file_like_data(("overwritten%d" % i).encode("ascii")), {"over": i})
            for i in range(10)
        ]
        self.store.multiset(keys, values)
        for i, key in enumerate(keys):
            self._expect(self._data(key), ("overwritten%d" % i).encode("ascii"), key, "get_data(key)")
            self._expect(self.store.get_metadata(key), {"over": i}, key, "get_metadata(key)")
        self._expect(
            list(self.store.query_keys(meta=True)),
            [],
            _query_text('query_keys', meta=True), "list(query_keys(meta=True))")

    def test_multiset_iterators(self):
        """multiset accepts one-shot iterators (generators, zip) for both arguments."""
        keys = ("set_key%d" % i for i in range(3))
        values = zip(
            (create_file_like_data(("set_value%d" % i).encode("ascii")) for i in range(3)),
            ({"set": i} for i in range(3)),
        )
        self.store.multiset(keys, values)
        for i in range(3):
            self._expect(
                self._data("set_key%d" % i),
                ("set_value%d" % i).encode("ascii"),
                'set_key%d' % i, "get_data('set_key%d' % i)")
            self._expect(
                self.store.get_metadata("set_key%d" % i),
                {"set": i},
                'set_key%d' % i, "get_metadata('set_key%d' % i)")

    def test_multiset_shortest(self):
        """multiset stops at the shorter of keys and values, like zip."""
        self.store.multiset(
            ["set_key0", "set_key1", "set_key2"],
            [(create_file_like_data(b"a"), {}), (create_file_like_data(b"b"), {})],
        )
        self.assertTrue(self.store.exists("set_key1"),
            msg=self._about('set_key1', "exists('set_key1') should be true"))
        self.assertFalse(self.store.exists("set_key2"),
            msg=self._about('set_key2', "exists('set_key2') should be false"))

    def test_multiset_data(self):
        """multiset_data replaces data and keeps metadata."""
        keys = ["existing_key%d" % i for i in range(3)] + ["set_key0"]
        datas = (create_file_like_data(("new%d" % i).encode("ascii")) for i in range(4))
        self.store.multiset_data(iter(keys), datas)
        for i in range(3):
            self._expect(
                self._data("existing_key%d" % i),
                ("new%d" % i).encode("ascii"),
                'existing_key%d' % i, "get_data('existing_key%d' % i)")
            self._expect(
                self.store.get_metadata("existing_key%d" % i),
                self._existing(i)[1],
                'existing_key%d' % i, "get_metadata('existing_key%d' % i)")
        self._expect(self._data("set_key0"), b"new3", 'set_key0', "get_data('set_key0')")
        self._expect(self.store.get_metadata("set_key0"), {}, 'set_key0', "get_metadata('set_key0')")

    def test_multiset_metadata(self):
        """multiset_metadata replaces metadata and keeps data."""
        keys = ["existing_key%d" % i for i in range(3)] + ["set_key0"]
        self.store.multiset_metadata(iter(keys), ({"new": i} for i in range(4)))
        for i in range(3):
            self._expect(
                self.store.get_metadata("existing_key%d" % i),
                {"new": i},
                'existing_key%d' % i, "get_metadata('existing_key%d' % i)")
            self._expect(
                self._data("existing_key%d" % i),
                self._existing(i)[0],
                'existing_key%d' % i, "get_data('existing_key%d' % i)")
        self._expect(self.store.get_metadata("set_key0"), {"new": 3}, 'set_key0', "get_metadata('set_key0')")
        self._expect(self._data("set_key0"), b"", 'set_key0', "get_data('set_key0')")

    def test_multiupdate_metadata(self):
        """multiupdate_metadata merges into the metadata of each key."""
        keys = ("existing_key%d" % i for i in range(3))
        self.store.multiupdate_metadata(keys, ({"meta1": 10 + i, "x": i} for i in range(3)))
        for i in range(3):
            self._expect(
                self.store.get_metadata("existing_key%d" % i),
                {"meta": True, "meta1": 10 + i, "x": i},
                'existing_key%d' % i, "get_metadata('existing_key%d' % i)")
        self._expect(
            self.store.get_metadata("existing_key3"),
            self._existing(3)[1],
            'existing_key3', "get_metadata('existing_key3')")

    # from_file / from_bytes

    def test_from_file(self):
        """from_file stores the content of a file."""
        with temp_dir() as directory:
            path = os.path.join(directory, "source.dat")
            with open(path, "wb") as stream:
                stream.write(b"file content\x00\xff")
            self.store.from_file("set_key0", path)
            self.store.from_file("existing_key0", path, buffer_size=4)
        self._expect(self._data("set_key0"), b"file content\x00\xff", 'set_key0', "get_data('set_key0')")
        self._expect(self.store.get_metadata("set_key0"), {}, 'set_key0', "get_metadata('set_key0')")
        self._expect(
            self._data("existing_key0"),
            b"file content\x00\xff",
            'existing_key0', "get_data('existing_key0')")
        self._expect(
            self.store.get_metadata("existing_key0"),
            self._existing(0)[1],
            'existing_key0', "get_metadata('existing_key0')")

    def test_from_file_large(self):
        """from_file streams a large file (about 50 MB) into the store."""
        with temp_dir() as directory:
            path = os.path.join(directory, "large.dat")
            with open(path, "wb") as stream:
                shutil.copyfileobj(PatternFile(LARGE_SIZE), stream, 1 << 20)
            self.store.from_file("set_key_large", path)
        self._assert_stream_is_pattern(self.store.get_data("set_key_large"), LARGE_SIZE, "set_key_large")

    def test_from_bytes(self):
        """from_bytes stores bytes and keeps existing metadata."""
        self.store.from_bytes("set_key0", b"some bytes")
        self._expect(self._data("set_key0"), b"some bytes", 'set_key0', "get_data('set_key0')")
        self._expect(self.store.get_metadata("set_key0"), {}, 'set_key0', "get_metadata('set_key0')")
        self.store.from_bytes("existing_key1", b"other bytes", buffer_size=2)
        self._expect(
            self._data("existing_key1"),
            b"other bytes",
            'existing_key1', "get_data('existing_key1')")
        self._expect(
            self.store.get_metadata("existing_key1"),
            self._existing(1)[1],
            'existing_key1', "get_metadata('existing_key1')")
        self.store.from_bytes("set_key1", bytearray(b"array"))
        self._expect(self.store.to_bytes("set_key1"), b"array", 'set_key1', "to_bytes('set_key1')")

    def test_to_file_round_trip(self):
        """Data written with from_bytes comes back through to_file."""
        data = bytes(range(256)) * 40
        self.store.from_bytes("set_key0", data)
        with temp_dir() as directory:
            path = os.path.join(directory, "out.dat")
            self.store.to_file("set_key0", path, buffer_size=1000)
            with open(path, "rb") as stream:
                self._expect(stream.read(), data, "set_key0", "content of the file written by to_file")

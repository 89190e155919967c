"""The metadata value types mixin: :class:`StoreMetadataTypesTestMixin`."""
from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any, Dict

from ._support import _query_text, create_file_like_data, _StoreTestHelpers


def metadata_type_samples() -> Dict[str, Any]:
    """Return metadata holding every value type beyond JSON a store must keep.

    Returns
    -------
    dict
        One item per type (``datetime`` naive and with a UTC offset,
        ``date``, ``time``, ``Decimal``, ``bytes``, ``set``, ``frozenset``,
        ``UUID``), some of them nested in lists and dictionaries, and a
        dictionary that looks like the tagged JSON form of a value.
    """
    offset = datetime.timezone(datetime.timedelta(hours=-5, minutes=-30))
    return {
        "when": datetime.datetime(2011, 3, 4, 5, 6, 7, 890123),
        "when_utc": datetime.datetime(2011, 3, 4, 5, 6, 7, tzinfo=datetime.timezone.utc),
        "when_offset": datetime.datetime(1999, 12, 31, 23, 59, 59, tzinfo=offset),
        "day": datetime.date(1970, 1, 1),
        "at": datetime.time(13, 14, 15, 16),
        "price": decimal.Decimal("19.990"),
        "tiny": decimal.Decimal("-1E-30"),
        "blob": b"\x00\x01\xfe\xff binary",
        "empty_blob": b"",
        "tags": {"a", "b", 3, 2.5, None, True, b"x", datetime.date(2000, 1, 1)},
        "frozen": frozenset({frozenset({1, 2}), "z"}),
        "no_tags": set(),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "nested": {"list": [datetime.date(2001, 2, 3), decimal.Decimal("2"), {"b": b"y"}]},
        "lookalike": {"$encore:date": "not a date"},
        "plain": [1, "two", 3.0, None, {"k": [True]}],
    }


class StoreMetadataTypesTestMixin(_StoreTestHelpers):
    """Tests that a store keeps metadata values beyond JSON exactly.

    Stores accept, besides JSON values, ``datetime.datetime``,
    ``datetime.date``, ``datetime.time``, ``decimal.Decimal``, ``bytes``,
    ``set``, ``frozenset`` and ``uuid.UUID`` (the types Encore 0.8 programs
    kept in their pickled metadata) and return them with the same type and
    value; queries compare them with Python ``==``.

    Fixture contract: ``setUp`` sets ``self.store`` to a connected writable
    store in which no key starts with ``'types_'``.
    """

    def _assert_same(self, actual: Any, expected: Any, key: str, what: str, path: str = "") -> None:
        """Assert equality with the same types all the way down; a failure
        names the key, the read (``what``) and where in the metadata."""
        where = "{} at metadata{}".format(what, path)
        self.assertIs(type(actual), type(expected), self._about(
            key, "type of the " + where, type(expected), type(actual)))
        if isinstance(expected, dict):
            self._expect(set(actual), set(expected), key, "names in the " + where)
            for name in expected:
                self._assert_same(actual[name], expected[name], key, what, "{}[{!r}]".format(path, name))
        elif isinstance(expected, list):
            self._expect(len(actual), len(expected), key, "length of the " + where)
            for index, (left, right) in enumerate(zip(actual, expected)):
                self._assert_same(left, right, key, what, "{}[{}]".format(path, index))
        elif isinstance(expected, (set, frozenset)):
            self._expect(actual, expected, key, where)
            self._expect(sorted(map(repr, map(type, actual))),
                         sorted(map(repr, map(type, expected))), key, "types of the members of the " + where)
        else:
            self._expect(actual, expected, key, where)
            if isinstance(expected, (datetime.datetime, datetime.time)):
                self._expect(actual.utcoffset(), expected.utcoffset(), key, "utcoffset() of the " + where)
            if isinstance(expected, decimal.Decimal):
                self._expect(str(actual), str(expected), key, "str() of the " + where)

    def test_metadata_types_round_trip(self):
        """Every extra type reads back with its type and value, by every read."""
        samples = metadata_type_samples()
        self.store.set("types_set", (create_file_like_data(b"data"), samples))
        self._assert_same(self.store.get_metadata("types_set"), samples, "types_set", "get_metadata()")
        self._assert_same(self.store.get("types_set").metadata, samples, "types_set", "get().metadata")
        self._assert_same(dict(self.store.query(when=samples["when"]))["types_set"], samples,
                          "types_set", "query(when=...)")
        self._assert_same(
            self.store.get_metadata("types_set", select=["price", "tags"]),
            {"price": samples["price"], "tags": samples["tags"]},
            "types_set", "get_metadata(select=['price', 'tags'])")
        self._expect(self._data("types_set"), b"data", 'types_set', "get_data('types_set')")

    def test_metadata_types_set_metadata_and_update(self):
        """set_metadata, update_metadata and multiset_metadata keep the types too."""
        samples = metadata_type_samples()
        self.store.set_metadata("types_meta", samples)
        self._assert_same(self.store.get_metadata("types_meta"), samples, "types_meta",
                          "get_metadata() after set_metadata")
        self.store.update_metadata("types_meta", {"day": datetime.date(2020, 2, 29),
                                                  "extra": {1, 2}})
        expected = dict(samples, day=datetime.date(2020, 2, 29), extra={1, 2})
        self._assert_same(self.store.get_metadata("types_meta"), expected, "types_meta",
                          "get_metadata() after update_metadata")
        self.store.multiset_metadata(["types_multi"], [{"id": samples["id"]}])
        self._assert_same(self.store.get_metadata("types_multi"), {"id": samples["id"]}, "types_multi",
                          "get_metadata() after multiset_metadata")

    def test_metadata_types_query(self):
        """Queries on extra types compare with Python ``==``."""
        self.store.set_metadata("types_a", {"n": decimal.Decimal("2"), "s": {1, 2},
                                            "d": datetime.date(2000, 1, 1), "b": b"x"})
        self.store.set_metadata("types_b", {"n": 2.5, "s": frozenset({3}),
                                            "d": datetime.datetime(2000, 1, 1), "b": "x"})
        self.store.set_metadata("types_c", {"n": decimal.Decimal("2.50"), "s": [1, 2]})
        cases = [
            ({"n": 2}, ["types_a"]),
            ({"n": 2.0}, ["types_a"]),
            ({"n": decimal.Decimal("2.0")}, ["types_a"]),
            ({"n": 2.5}, ["types_b", "types_c"]),
            ({"n": decimal.Decimal("2.5")}, ["types_b", "types_c"]),
            ({"s": frozenset({1, 2})}, ["types_a"]),
            ({"s": {3}}, ["types_b"]),
            ({"s": [1, 2]}, ["types_c"]),
            ({"d": datetime.date(2000, 1, 1)}, ["types_a"]),
            ({"d": datetime.datetime(2000, 1, 1)}, ["types_b"]),
            ({"b": b"x"}, ["types_a"]),
            ({"b": "x"}, ["types_b"]),
        ]
        for criteria, expected in cases:
            with self.subTest(criteria=criteria):
                found = sorted(key for key in self.store.query_keys(**criteria)
                               if key.startswith("types_"))
                self._expect(found, expected, _query_text("query_keys", **criteria), "keys found")
                found = sorted(key for key, _ in self.store.query(**criteria)
                               if key.startswith("types_"))
                self._expect(found, expected, _query_text("query", **criteria), "keys found")

    def test_metadata_types_are_copies(self):
        """A set read back is a copy: changing it changes nothing stored."""
        self.store.set_metadata("types_copy", {"tags": {"a"}, "list": [{"b"}]})
        metadata = self.store.get_metadata("types_copy")
        metadata["tags"].add("changed")
        metadata["list"][0].add("changed")
        self._expect(
            self.store.get_metadata("types_copy"),
            {"tags": {"a"}, "list": [{"b"}]},
            'types_copy', "get_metadata('types_copy')")
        source = {"tags": {"a"}}
        self.store.set_metadata("types_copy", source)
        source["tags"].add("later")
        self._expect(
            self.store.get_metadata("types_copy"),
            {"tags": {"a"}},
            'types_copy', "get_metadata('types_copy')")

    def test_metadata_types_refused(self):
        """Other types are refused, naming the key and where they are; nothing is written."""
        cases = [
            ({"a": datetime.timedelta(days=1)}, TypeError, "at a "),
            ({"a": {"b": [1, complex(1, 2)]}}, TypeError, r"a\.b\[1\]"),
            ({"a": {1, (2, 3)}}, TypeError, "set at a"),
            ({"a": bytearray(b"x")}, TypeError, "bytearray"),
            ({"a": decimal.Decimal("sNaN")}, ValueError, "at a "),
        ]
        for metadata, error, message in cases:
            with self.subTest(metadata=metadata):
                named = "'types_refused'.*" + message
                with self.assertRaisesRegex(error, named, msg=self._about(
                        "types_refused", "set() should raise {} matching {!r}".format(error.__name__, named))):
                    self.store.set("types_refused", (create_file_like_data(b"x"), metadata))
                with self.assertRaisesRegex(error, named, msg=self._about(
                        "types_refused", "set_metadata() should raise {} matching {!r}".format(error.__name__, named))):
                    self.store.set_metadata("types_refused", metadata)
                with self.assertRaisesRegex(error, named, msg=self._about(
                        ["types_ok", "types_refused"],
                        "multiset_metadata() should raise {} matching {!r}".format(error.__name__, named))):
                    self.store.multiset_metadata(["types_ok", "types_refused"], [{}, metadata])
                self.assertFalse(self.store.exists("types_ok"),
                    msg=self._about('types_ok', "exists('types_ok') should be false"))
                self.assertFalse(self.store.exists("types_refused"),
                    msg=self._about('types_refused', "exists('types_refused') should be false"))

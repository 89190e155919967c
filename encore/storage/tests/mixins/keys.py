"""Awkward keys: :class:`StoreKeyTestMixin`."""
from __future__ import annotations

import os
from typing import Optional

from ._support import (
    _query_text,
    create_file_like_data,
    _glob_escape,
    _StoreTestHelpers,
)


class StoreKeyTestMixin(_StoreTestHelpers):
    """Tests that keys are arbitrary strings.

    Fixture contract: ``setUp`` sets ``self.store`` to an empty connected
    writable store.  A store kept in a directory may also set
    ``self.store_directory`` to that directory; the tests then check that no
    file appears next to it (nothing escapes through ``..`` or ``/``).  The
    directory's parent should be private to the test (for example a
    :func:`temp_dir`).

    Every key of :attr:`awkward_keys` must round-trip through ``set``,
    ``get``, ``exists``, ``query_keys``, ``glob`` and ``delete``, distinct
    from every other (keys differing only in case included).

    Attributes
    ----------
    awkward_keys : list of str
        The keys tried.
    """

    awkward_keys = [
        "plain",
        "with space",
        " leading and trailing ",
        "ünïcödé",
        "中文键",
        "emoji \U0001F600",
        "a/b/c",
        "/leading/slash",
        "trailing/",
        "double//slash",
        ".",
        "..",
        "../escape",
        "../../escape2",
        "a/../../escape3",
        ".hidden",
        "..double_dot",
        "back\\slash",
        "..\\escape4",
        "C:\\drive",
        "colon:key",
        "percent%2Fkey",
        "quote'\"key",
        "semi;colon -- comment",
        "star*question?[bracket]",
        "tab\tnewline\n",
        "x" * 1000,
        "CaseKey",
        "casekey",
        "CASEKEY",
    ]

    def _parent_listing(self) -> Optional[set]:
        directory = getattr(self, "store_directory", None)
        if directory is None:
            return None
        parent = os.path.dirname(os.path.abspath(directory))
        return set(os.listdir(parent))

    def test_awkward_keys_round_trip(self):
        """Awkward keys are stored, listed, matched and deleted as themselves."""
        listing = self._parent_listing()
        keys = list(self.awkward_keys)
        for i, key in enumerate(keys):
            self.store.set(key, (create_file_like_data(key.encode("utf-8") + b"!"), {"index": i}))
        if listing is not None:
            self._expect_content(dict.fromkeys(self._parent_listing(), True), dict.fromkeys(listing, True),
                                 "entries beside the store's directory (awkward keys must stay inside)")
        self._expect(
            sorted(self.store.query_keys()),
            sorted(keys),
            _query_text('query_keys'), "sorted(query_keys())")
        self._expect(
            sorted(key for key, _ in self.store.query()),
            sorted(keys),
            _query_text('query'), "sorted((key for key, _ in query()))")
        for i, key in enumerate(keys):
            with self.subTest(key=key):
                self.assertTrue(self.store.exists(key), msg=self._about(key, "exists(key) should be true"))
                value = self.store.get(key)
                self._expect(
                    self._read(value.data),
                    key.encode("utf-8") + b"!",
                    key, "read(value.data) of get(key)")
                self._expect(value.metadata, {"index": i}, key, "value.metadata of get(key)")
                self._expect(self.store.get_metadata(key), {"index": i}, key, "get_metadata(key)")
                self._expect(
                    list(self.store.query_keys(index=i)),
                    [key],
                    _query_text('query_keys', index=i), "list(query_keys(index=i))")
                self._expect(
                    list(self.store.glob(_glob_escape(key))),
                    [key],
                    _query_text('glob', pattern=_glob_escape(key)), "list(glob(_glob_escape(key)))")
        for key in keys:
            with self.subTest(key=key):
                self.store.delete(key)
                self.assertFalse(self.store.exists(key), msg=self._about(key, "exists(key) should be false"))
        self._expect(list(self.store.query_keys()), [], _query_text('query_keys'), "list(query_keys())")
        if listing is not None:
            self._expect_content(dict.fromkeys(self._parent_listing(), True), dict.fromkeys(listing, True),
                                 "entries beside the store's directory (awkward keys must stay inside)")

    def test_awkward_keys_other_writes(self):
        """set_data, set_metadata and update_metadata work with awkward keys."""
        for key in self.awkward_keys:
            with self.subTest(key=key):
                self.store.set_data(key, create_file_like_data(b"data"))
                self.store.set_metadata(key, {"k": key})
                self.store.update_metadata(key, {"more": 1})
                self._expect(self.store.get_metadata(key), {"k": key, "more": 1}, key, "get_metadata(key)")
                self._expect(self.store.to_bytes(key), b"data", key, "to_bytes(key)")
        self._expect(
            sorted(self.store.query_keys()),
            sorted(self.awkward_keys),
            _query_text('query_keys'), "sorted(query_keys())")

    def test_keys_differing_in_case(self):
        """Keys differing only in case are different keys."""
        self.store.set("CaseKey", (create_file_like_data(b"1"), {"n": 1}))
        self.store.set("casekey", (create_file_like_data(b"2"), {"n": 2}))
        self._expect(self._data("CaseKey"), b"1", 'CaseKey', "get_data('CaseKey')")
        self._expect(self._data("casekey"), b"2", 'casekey', "get_data('casekey')")
        self.assertFalse(self.store.exists("CASEKEY"),
            msg=self._about('CASEKEY', "exists('CASEKEY') should be false"))
        self.store.delete("casekey")
        self.assertTrue(self.store.exists("CaseKey"),
            msg=self._about('CaseKey', "exists('CaseKey') should be true"))
        self._expect(list(self.store.glob("case*")), [], _query_text("glob", pattern='case*'), "list(glob('case*'))")

    def test_nested_path_keys(self):
        """A key may be a path prefix of another key."""
        keys = ["a", "a/b", "a/b/c", "a/b/c/"]
        for key in keys:
            self.store.set(key, (create_file_like_data(key.encode()), {}))
        self.store.delete("a/b")
        self._expect(
            sorted(self.store.query_keys()),
            ["a", "a/b/c", "a/b/c/"],
            _query_text('query_keys'), "sorted(query_keys())")
        self._expect(self._data("a/b/c"), b"a/b/c", 'a/b/c', "get_data('a/b/c')")
        self.store.set("a/b", (create_file_like_data(b"again"), {}))
        self._expect(self._data("a/b"), b"again", 'a/b', "get_data('a/b')")
        self._expect(sorted(self.store.glob("a/*")), ["a/b", "a/b/c", "a/b/c/"], _query_text("glob", pattern='a/*'), "sorted(glob('a/*'))")

    def test_key_escape_does_not_shadow(self):
        """Keys that an escaping scheme might confuse stay distinct."""
        keys = ["a/b", "a%2Fb", "a_b", "a\\b", "a%b", "a%25b", "a.b", "a..b"]
        for i, key in enumerate(keys):
            self.store.set(key, (create_file_like_data(b"%d" % i), {}))
        for i, key in enumerate(keys):
            self._expect(self._data(key), b"%d" % i, key, "get_data(key)")
        self._expect(
            sorted(self.store.query_keys()),
            sorted(keys),
            _query_text('query_keys'), "sorted(query_keys())")

"""Metadata copies that share nothing with the store: :class:`StoreMetadataCopyTestMixin`."""
from __future__ import annotations



from ._support import (
    create_file_like_data,
    _StoreTestHelpers,
)


class StoreMetadataCopyTestMixin(_StoreTestHelpers):
    """Tests that metadata handed out by a store shares nothing with it.

    Changing any part of the metadata returned by a read -- nested lists and
    dictionaries included -- must not change what the store holds.  (Encore
    0.8's mixins only changed the returned dictionary itself, which a store
    returning shallow copies passes.)

    Fixture contract: ``setUp`` sets ``self.store`` to a connected writable
    store holding no key starting with ``'copy_'``.
    """

    def _nested(self) -> dict:
        return {"a_list": [1, [2, 3]], "a_dict": {"inner": {"x": [4]}}, "a_str": "s"}

    def _mutate(self, metadata: dict) -> None:
        metadata["a_list"].append(5)
        metadata["a_list"][1].append(6)
        metadata["a_dict"]["inner"]["x"].append(7)
        metadata["a_dict"]["added"] = True

    def _write(self) -> None:
        self.store.set("copy_key", (create_file_like_data(b"data"), self._nested()))

    def test_get_nested_metadata(self):
        """Changing nested parts of a value's metadata does not change the store."""
        self._write()
        self._mutate(self.store.get("copy_key").metadata)
        self._expect(
            self.store.get_metadata("copy_key"),
            self._nested(),
            'copy_key', "get_metadata('copy_key')")

    def test_get_metadata_nested(self):
        """Changing nested parts of get_metadata's result does not change the store."""
        self._write()
        self._mutate(self.store.get_metadata("copy_key"))
        self._mutate(self.store.get_metadata("copy_key", select=["a_list", "a_dict"]))
        self._expect(
            self.store.get_metadata("copy_key"),
            self._nested(),
            'copy_key', "get_metadata('copy_key')")

    def test_query_nested(self):
        """Changing nested parts of query's results does not change the store."""
        self._write()
        for _, metadata in self.store.query(a_str="s"):
            self._mutate(metadata)
        for _, metadata in self.store.query(select=["a_list", "a_dict"], a_str="s"):
            self._mutate(metadata)
        self._expect(
            self.store.get_metadata("copy_key"),
            self._nested(),
            'copy_key', "get_metadata('copy_key')")

    def test_multiget_metadata_nested(self):
        """Changing nested parts of multiget_metadata's results does not change the store."""
        self._write()
        for metadata in self.store.multiget_metadata(["copy_key"]):
            self._mutate(metadata)
        for value in self.store.multiget(["copy_key"]):
            self._mutate(value.metadata)
        self._expect(
            self.store.get_metadata("copy_key"),
            self._nested(),
            'copy_key', "get_metadata('copy_key')")

    def test_written_metadata_nested(self):
        """Changing nested parts of written metadata afterwards does not change the store."""
        metadata = self._nested()
        self.store.set("copy_key", (create_file_like_data(b"data"), metadata))
        self._mutate(metadata)
        update = {"a_list": [1, [2, 3]]}
        self.store.update_metadata("copy_key", update)
        update["a_list"][1].append(6)
        replacement = self._nested()
        self.store.set_metadata("copy_other", replacement)
        self._mutate(replacement)
        self._expect(
            self.store.get_metadata("copy_key"),
            self._nested(),
            'copy_key', "get_metadata('copy_key')")
        self._expect(
            self.store.get_metadata("copy_other"),
            self._nested(),
            'copy_other', "get_metadata('copy_other')")

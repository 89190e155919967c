"""A conformance mixin that fails says which key and what was expected.

Each case runs one mixin test against a deliberately broken variant of the
dictionary store (the variants of ``test_dict_memory_store``, each
reproducing a real bug) and checks the text of the failure: it names the key
(or the keys, or the query) and gives the expected and the actual value, so
the author of a store can act on it without reading the mixin's source.
"""
import re
import unittest

import pytest

from encore.events.api import EventManager
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.tests.abstract_test import (
    StoreBadInputTestMixin,
    StoreConcurrencyTestMixin,
    StoreEventTestMixin,
    StoreKeyTestMixin,
    StoreMetadataCopyTestMixin,
    StoreMetadataTypesTestMixin,
    StoreReadTestMixin,
    StoreTransactionTestMixin,
    StoreWriteTestMixin,
    read_fixture,
    write_fixture,
)
from encore.storage.tests.mixins._support import _About, _query_text, _StoreTestHelpers, _Text

from .test_dict_memory_store import (
    CaseInsensitiveStore,
    FineGrainedProgressStore,
    HiddenDotKeysStore,
    InclusiveRangeStore,
    InPlaceUpdateStore,
    LaxDataStore,
    NoRollbackStore,
    PartialWriteStore,
    RacyUpdateStore,
    ResettingFromBytesStore,
    ShallowCopyStore,
    TornWriteStore,
    _run_mixin_test,
)


class WrongMetadataStore(DictMemoryStore):
    """Returns the metadata of one key with a value changed."""

    def get_metadata(self, key, select=None):
        metadata = super().get_metadata(key, select)
        if key == "key3" and "query_test2" in metadata:
            metadata["query_test2"] = 33
        return metadata


class MissingKeyQueryStore(DictMemoryStore):
    """Leaves one key out of every query."""

    def query_keys(self, **kwargs):
        return (key for key in super().query_keys(**kwargs) if key != "key7")


class SilentDeleteStore(DictMemoryStore):
    """Deleting a missing key does nothing instead of raising KeyError."""

    def delete(self, key):
        if key in self._store:
            super().delete(key)


class DecimalAsFloatStore(DictMemoryStore):
    """Hands Decimal metadata back as float (a lossy codec)."""

    def get_metadata(self, key, select=None):
        import decimal

        def lossy(value):
            if isinstance(value, decimal.Decimal):
                return float(value)
            if isinstance(value, dict):
                return {name: lossy(item) for name, item in value.items()}
            return value

        return lossy(super().get_metadata(key, select))


# (mixin, broken store, test, fixture, patterns the failure text must contain)
CASES = [
    (StoreWriteTestMixin, InPlaceUpdateStore, "test_update_metadata", write_fixture,
     [r"key 'existing_key6': get\('existing_key6'\)\.modified should be a number .* between [\d.]+ and [\d.]+",
      r"; got [\d.]+"]),
    (StoreEventTestMixin, InPlaceUpdateStore, "test_update_metadata_event", None,
     [r"key 'event_key': number of modification events; expected 1; got 0"]),
    (StoreWriteTestMixin, ResettingFromBytesStore, "test_from_bytes", write_fixture,
     [r"key 'existing_key1': get_metadata\('existing_key1'\); expected \{'meta': True, 'meta1': -1\}; got \{\}"]),
    (StoreTransactionTestMixin, NoRollbackStore, "test_rollback", None,
     [r"keys \[.*'tx_keep'.*\]: content after the rolled back transaction; expected \{'tx_keep': \(b'keep'",
      r"got \{'tx_keep': \(b'changed'"]),
    (StoreTransactionTestMixin, NoRollbackStore, "test_no_events_after_rollback", None,
     [r"keys \['tx_new', 'tx_keep', 'tx_update'\]: modification events of a rolled back transaction; "
      r"expected \[\]; got \[StoreSetEvent\(key='tx_new'"]),
    (StoreMetadataCopyTestMixin, ShallowCopyStore, "test_get_metadata_nested", None,
     [r"key 'copy_key': get_metadata\('copy_key'\); expected \{'a_list': \[1, \[2, 3\]\]",
      r"got \{'a_list': \[1, \[2, 3, 6"]),
    (StoreReadTestMixin, InclusiveRangeStore, "test_get_data_range", read_fixture,
     [r"key 'test1': read\(stream\) of get_data_range\('test1', start, end\); expected b'es'; got b'est'"]),
    (StoreReadTestMixin, WrongMetadataStore, "test_get_metadata_select_missing", read_fixture,
     [r"key 'key3': get_metadata\('key3', select=\['query_test2', 'optional'\]\); "
      r"expected \{'query_test2': 3\}; got \{'query_test2': 33\}"]),
    (StoreReadTestMixin, MissingKeyQueryStore, "test_query1_keys", read_fixture,
     [r"query_keys\(query_test1='value'\): .*; expected \['key0', .*'key9'\]; got \[.*\]; "
      r"missing \['key7'\]; not expected \[\]"]),
    (StoreWriteTestMixin, SilentDeleteStore, "test_delete_missing", write_fixture,
     [r"KeyError not raised : key 'set_key0': delete\('set_key0'\) should raise KeyError"]),
    (StoreKeyTestMixin, HiddenDotKeysStore, "test_awkward_keys_round_trip", None,
     [r"query_keys\(\): sorted\(query_keys\(\)\); expected \[", r"missing \[.*'\.hidden'.*\]; not expected \[\]"]),
    (StoreKeyTestMixin, CaseInsensitiveStore, "test_keys_differing_in_case", None,
     [r"key 'CaseKey': get_data\('CaseKey'\); expected b'1'; got b'2'"]),
    (StoreBadInputTestMixin, PartialWriteStore, "test_failing_stream", None,
     [r"query_keys\(\): keys after refused writes \(only the existing key\); "
      r"expected \['bad_existing'\]; got \['bad_existing', 'bad_new'\]; missing \[\]; not expected \['bad_new'\]"]),
    (StoreBadInputTestMixin, LaxDataStore, "test_data_without_read", None,
     [r"TypeError not raised : key 'bad_existing': set_data\(target, bad\) should raise TypeError"]),
    (StoreConcurrencyTestMixin, RacyUpdateStore, "test_metadata_updates", None,
     [r"key 'counter': get_metadata\('counter'\); expected \{'thread0': \d+, 'thread1'"]),
    (StoreConcurrencyTestMixin, TornWriteStore, "test_shared_key", None,
     [r"key 'shared': data: one writer's payload, whole \(not torn\); expected b'<\d+:\d+><"]),
    (StoreEventTestMixin, FineGrainedProgressStore, "test_set_progress_events", None,
     [r"key 'event_large': number of StoreProgressStepEvents of 4194304 bytes in buffers of 262144 "
      r"should be <= \d+; got 4096"]),
    (StoreMetadataTypesTestMixin, DecimalAsFloatStore, "test_metadata_types_round_trip", None,
     [r"key 'types_set': type of the get_metadata\(\) at metadata\['price'\]; "
      r"expected <class 'decimal\.Decimal'>; got <class 'float'>"]),
]


@pytest.mark.parametrize(
    "mixin, store_class, test_name, fixture, patterns", CASES,
    ids=["{}-{}".format(case[1].__name__, case[2]) for case in CASES])
def test_failure_names_the_key_and_the_expectation(mixin, store_class, test_name, fixture, patterns):
    result = _run_mixin_test(mixin, store_class, test_name, fixture)
    assert not result.errors, result.errors
    assert result.failures, "{} passed on {}".format(test_name, store_class.__name__)
    text = "\n".join(failure for _, failure in result.failures)  # one per failing subtest
    for pattern in patterns:
        assert re.search(pattern, text), "{!r} not in the failure:\n{}".format(pattern, text)


@pytest.mark.parametrize(
    "mixin, store_class, test_name, fixture, patterns", CASES,
    ids=["{}-{}".format(case[1].__name__, case[2]) for case in CASES])
def test_the_same_tests_pass_on_the_real_store(mixin, store_class, test_name, fixture, patterns):
    result = _run_mixin_test(mixin, DictMemoryStore, test_name, fixture)
    assert not result.failures and not result.errors, result.failures + result.errors


def test_explanation_is_formatted_only_on_failure():
    class Exploding(object):
        def __repr__(self):
            raise AssertionError("formatted although the check passed")

        def __eq__(self, other):
            return isinstance(other, Exploding)

        __hash__ = object.__hash__

    case = _Helpers()
    case._expect(Exploding(), Exploding(), "k", "anything")  # passes: nothing formatted


class _Helpers(_StoreTestHelpers, unittest.TestCase):
    """The helpers alone, on a test case that is not collected."""

    __test__ = False

    def runTest(self):
        pass


def test_explanation_text():
    assert str(_About("k", "get_data('k')", b"a", b"b")) == "key 'k': get_data('k'); expected b'a'; got b'b'"
    assert str(_About(["a", "b"], "keys found", ["a", "b"], ["b", "c"])) == (
        "keys ['a', 'b']: keys found; expected ['a', 'b']; got ['b', 'c']; missing ['a']; not expected ['c']")
    assert str(_About(_query_text("query", b=1, a="x"), "keys found")) == "query(a='x', b=1): keys found"
    assert str(_About(_Text("transaction('t')"), "the error should propagate")) == (
        "transaction('t'): the error should propagate")
    long = str(_About("big", "data", b"x" * 10000, b"y" * 10000))
    assert len(long) < 1000 and "characters]" in long
    case = _Helpers()
    with pytest.raises(AssertionError, match=r"key 'k': get_metadata\('k'\); expected \{'a': 1\}; got \{'a': 2\}"):
        case._expect({"a": 2}, {"a": 1}, "k", "get_metadata('k')")
    with pytest.raises(AssertionError, match=r"keys \['b'\]: content; expected"):
        case._expect_content({"a": 1, "b": 2}, {"a": 1, "b": 3}, "content")

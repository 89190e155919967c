"""The pytest form of the conformance cases: a store from a fixture.

This module uses :mod:`encore.storage.tests.pytest_plugin` as a third-party
store's tests would: it names the plugin in ``pytest_plugins``, defines the
``encore_store`` fixture and builds the cases with ``conformance_cases``.
"""
import unittest

import pytest

from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.tests.abstract_test import CONFORMANCE_MIXINS, conformance_cases

pytest_plugins = ["encore.storage.tests.pytest_plugin"]

#: The stores the fixture made and tore down, to check the fixture's life.
MADE = []
TORN_DOWN = []


@pytest.fixture
def encore_store(encore_event_manager):
    store = DictMemoryStore(event_manager=encore_event_manager)
    MADE.append(store)
    yield store
    TORN_DOWN.append(store)


CASES = conformance_cases(
    "TestFixtureDict",
    attributes={"LargeValues": {"streaming": False, "large_value_size": 4 << 20}},
)
globals().update(CASES)


@pytest.fixture
def other_store():
    return DictMemoryStore()


# Another fixture name, and a subset of the mixins.
globals().update(conformance_cases("TestOtherFixture", "other_store", include=["Read", "MetadataTypes"]))


def test_one_case_per_mixin():
    assert sorted(CASES) == sorted("TestFixtureDict" + label for label in CONFORMANCE_MIXINS)
    for case in CASES.values():
        assert issubclass(case, unittest.TestCase)
        assert case.__module__ == __name__
    assert "TestOtherFixtureRead" in globals() and "TestOtherFixtureWrite" not in globals()


def test_the_fixture_made_the_stores_and_was_torn_down():
    # The conformance cases above ran first (pytest keeps the module order).
    if not MADE:
        pytest.skip("run together with this module's conformance cases")
    assert len(MADE) > len(CONFORMANCE_MIXINS)
    assert TORN_DOWN == MADE
    assert all(not store.is_connected() for store in MADE)


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError):
        conformance_cases("TestX", fixture=None)
    with pytest.raises(ValueError):
        conformance_cases("TestX", fixture="")
    with pytest.raises(ValueError, match="Reed"):
        conformance_cases("TestX", include=["Reed"])
    with pytest.raises(ValueError, match="Reed"):
        conformance_cases("TestX", attributes={"Reed": {}})


def test_the_default_fixture_says_what_is_missing(request):
    with pytest.raises(pytest.fail.Exception, match="define an 'encore_store' fixture"):
        # The plugin's own fixture, not the one this module defines.
        from encore.storage.tests import pytest_plugin
        pytest_plugin.encore_store.__wrapped__()

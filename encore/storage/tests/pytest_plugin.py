"""The conformance cases of a store, for a store made by a pytest fixture.

An opt-in pytest plugin: a test module (or the ``conftest.py`` at the root of
the tests) names it in ``pytest_plugins``, defines a fixture making the store,
and builds the cases with :func:`conformance_cases`::

    import pytest
    from encore.storage.tests.abstract_test import conformance_cases

    pytest_plugins = ["encore.storage.tests.pytest_plugin"]

    @pytest.fixture
    def encore_store(tmp_path, encore_event_manager):
        store = MyStore(tmp_path, event_manager=encore_event_manager)
        yield store
        store.close_files()

    globals().update(conformance_cases("TestMyStore"))

Each generated class is a :class:`unittest.TestCase` of one conformance mixin
(as :func:`~encore.storage.tests.abstract_test.store_test_cases` builds
them); pytest sets up the fixture before each test, the case connects the
store unless the fixture did, fills it with the mixin's fixture, disconnects
it after the test, and then pytest tears the fixture down.  The plugin
offers two fixtures: :func:`encore_event_manager` (a new event manager per
test) and a default :func:`encore_store` that fails with a message saying
what to define.  :func:`conformance_cases` is importable from here too; import
it from :mod:`encore.storage.tests.abstract_test` in the module naming the
plugin, so that pytest imports the plugin itself (and rewrites its asserts).
"""
from __future__ import annotations

from typing import Any

import pytest

from encore.events.api import EventManager

from .mixins.cases import conformance_cases

__all__ = ["conformance_cases", "encore_event_manager", "encore_store"]


@pytest.fixture
def encore_event_manager() -> EventManager:
    """A new :class:`~encore.events.event_manager.EventManager` for one test."""
    return EventManager()


@pytest.fixture
def encore_store() -> Any:
    """The store under test: define a fixture of this name (or another, see
    :func:`conformance_cases`) in the test module or a ``conftest.py``.

    Raises
    ------
    pytest.fail.Exception
        Always: this default only says that the fixture is missing.
    """
    pytest.fail("define an 'encore_store' fixture returning a new store for the conformance cases",
                pytrace=False)

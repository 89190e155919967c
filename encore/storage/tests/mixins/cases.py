"""Building the conformance test cases of a store: :func:`store_test_cases`.

This is the one way to test a store, in this repository and outside it: give
a function making the store, get one :class:`unittest.TestCase` class per
conformance mixin, and put them in a test module::

    from encore.storage.tests.abstract_test import store_test_cases

    def make_store(test):
        return MyStore(event_manager=EventManager())

    globals().update(store_test_cases(make_store, "TestMyStore"))

``unittest`` discovery and pytest both collect the classes from the module.
A store's own module then adds the tests of what is specific to it.
"""
from __future__ import annotations

import sys
import unittest
from typing import Any, Callable, Dict, Iterable, Mapping, Optional

from ._support import populate, read_fixture, write_fixture
from .bad_input import StoreBadInputTestMixin
from .concurrency import StoreConcurrencyTestMixin
from .events import StoreEventTestMixin
from .keys import StoreKeyTestMixin
from .large_value import StoreLargeValueTestMixin
from .metadata_copy import StoreMetadataCopyTestMixin
from .metadata_types import StoreMetadataTypesTestMixin
from .read import StoreReadTestMixin
from .transactions import StoreTransactionTestMixin
from .write import StoreWriteTestMixin

__all__ = ["CONFORMANCE_MIXINS", "conformance_cases", "store_test_cases"]

#: Every conformance mixin, by the label :func:`store_test_cases` gives it
#: (the end of the generated class names), in the order they run.
CONFORMANCE_MIXINS: Dict[str, type] = {
    "Read": StoreReadTestMixin,
    "Write": StoreWriteTestMixin,
    "Events": StoreEventTestMixin,
    "Transactions": StoreTransactionTestMixin,
    "Keys": StoreKeyTestMixin,
    "MetadataCopy": StoreMetadataCopyTestMixin,
    "Concurrency": StoreConcurrencyTestMixin,
    "BadInput": StoreBadInputTestMixin,
    "LargeValues": StoreLargeValueTestMixin,
    "MetadataTypes": StoreMetadataTypesTestMixin,
}


def _fill_read(store: Any) -> None:
    populate(store, read_fixture())


def _fill_write(store: Any) -> None:
    populate(store, write_fixture())


#: What the default fixtures put in the new store, per label (the other
#: mixins need an empty store).
_DEFAULT_FIXTURES: Dict[str, Callable[[Any], None]] = {
    "Read": _fill_read,
    "Write": _fill_write,
}


class _FactoryCase(object):
    """``setUp``: the store from the factory, connected and filled."""

    store_factory: Optional[Callable[[Any], Any]] = None
    fixture: Optional[Callable[[Any], None]] = None

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        store = type(self).store_factory(self)  # type: ignore[misc]
        self.store = store
        self.event_manager = store.event_manager
        if not store.is_connected():
            store.connect()
        self.addCleanup(store.disconnect)
        if self.fixture is not None:
            type(self).fixture(store)  # type: ignore[misc]


def store_test_cases(
    factory: Optional[Callable[[Any], Any]] = None,
    prefix: str = "TestStore",
    *,
    include: Optional[Iterable[str]] = None,
    exclude: Iterable[str] = (),
    fixtures: Optional[Mapping[str, Callable[[Any], None]]] = None,
    attributes: Optional[Mapping[str, Mapping[str, Any]]] = None,
    base: Optional[type] = None,
    overrides: Optional[Mapping[str, type]] = None,
) -> Dict[str, type]:
    """Build the conformance test cases of a store.

    Parameters
    ----------
    factory : callable, optional
        ``factory(test)`` returns a new store for one test (``test`` is the
        running :class:`unittest.TestCase`, whose ``addCleanup`` removes
        whatever the store needs, a temporary directory say).  The case
        connects the store unless it is connected already, disconnects it
        after the test, fills it with the mixin's fixture, and sets
        ``self.store`` and ``self.event_manager``.  Give ``base`` instead
        when the ``setUp`` of a class of yours builds the store.
    prefix : str, optional
        The start of the class names (default ``'TestStore'``); a class is
        named ``prefix + label``, e.g. ``TestMyStoreRead``.
    include : iterable of str, optional
        The labels of the mixins wanted (default: every key of
        :data:`CONFORMANCE_MIXINS`).
    exclude : iterable of str, optional
        Labels left out (a read-only store excludes the writing mixins).
    fixtures : mapping, optional
        Label to ``fill(store)``, replacing the default fixture of that
        mixin: the default fills ``'Read'`` with :func:`read_fixture` and
        ``'Write'`` with :func:`write_fixture` through ``set``; a read-only
        store fills its medium directly.
    attributes : mapping, optional
        Label to class attributes of that case (``{'LargeValues':
        {'large_value_size': 8 << 20}}``).
    base : type, optional
        A class whose ``setUp`` sets ``self.store`` (and fills it as the
        mixin's fixture contract says), put before the mixin instead of the
        factory's ``setUp``.
    overrides : mapping, optional
        Label to a class already combining a ``setUp`` and the mixin, used
        for that label instead (for a store whose fixture of one mixin
        needs a ``setUp`` of its own).

    Returns
    -------
    dict of str to type
        Class name to :class:`unittest.TestCase` subclass; ``globals().update``
        it in a test module.

    Raises
    ------
    ValueError
        If neither or both of ``factory`` and ``base`` are given, or a label
        is unknown.
    """
    if (factory is None) == (base is None):
        raise ValueError("give either a store factory or a base class")
    labels = list(CONFORMANCE_MIXINS if include is None else include)
    excluded = set(exclude)
    fixtures = dict(fixtures or {})
    attributes = dict(attributes or {})
    overrides = dict(overrides or {})
    unknown = (set(labels) | excluded | set(fixtures) | set(attributes) | set(overrides)) - set(
        CONFORMANCE_MIXINS)
    if unknown:
        raise ValueError("unknown conformance mixins: {}".format(", ".join(sorted(unknown))))
    # The classes belong to the calling test module, for readable test names.
    module = sys._getframe(1).f_globals.get("__name__", __name__)
    cases: Dict[str, type] = {}
    for label in labels:
        if label in excluded:
            continue
        name = prefix + label
        namespace: Dict[str, Any] = dict(attributes.get(label, {}))
        if label in overrides:
            bases: tuple = (overrides[label],)
        elif base is not None:
            bases = (base, CONFORMANCE_MIXINS[label])
        else:
            namespace["store_factory"] = staticmethod(factory)  # type: ignore[arg-type]
            fill = fixtures.get(label, _DEFAULT_FIXTURES.get(label))
            namespace["fixture"] = None if fill is None else staticmethod(fill)
            bases = (_FactoryCase, CONFORMANCE_MIXINS[label])
        if not any(issubclass(cls, unittest.TestCase) for cls in bases):
            bases = bases + (unittest.TestCase,)
        namespace.setdefault("__qualname__", name)
        namespace.setdefault("__module__", module)
        cases[name] = type(name, bases, namespace)
    return cases


def conformance_cases(
    prefix: str = "TestStore",
    fixture: str = "encore_store",
    *,
    include: Optional[Iterable[str]] = None,
    exclude: Iterable[str] = (),
    fixtures: Optional[Mapping[str, Any]] = None,
    attributes: Optional[Mapping[str, Mapping[str, Any]]] = None,
) -> Dict[str, type]:
    """Build the conformance test cases of the store a pytest fixture makes.

    The pytest form of :func:`store_test_cases`, documented with the plugin
    :mod:`encore.storage.tests.pytest_plugin` that offers the fixtures.

    Parameters
    ----------
    prefix : str, optional
        The start of the class names (default ``'TestStore'``); a class is
        named ``prefix + label``, e.g. ``TestMyStoreRead``.
    fixture : str, optional
        The name of the fixture giving a new store for each test (default
        ``'encore_store'``).  It may yield, to clean up after the test.
    include, exclude, fixtures, attributes
        As for :func:`~encore.storage.tests.abstract_test.store_test_cases`.

    Returns
    -------
    dict of str to type
        Class name to :class:`unittest.TestCase` subclass; ``globals().update``
        it in the test module.

    Raises
    ------
    TypeError
        If ``fixture`` is not a string.
    ValueError
        If ``fixture`` is empty or a label is unknown.
    """
    if not isinstance(fixture, str):
        raise TypeError("fixture must be the name of a pytest fixture, got {!r}".format(fixture))
    if not fixture:
        raise ValueError("fixture must be the name of a pytest fixture")

    import pytest  # only this function needs it

    @pytest.fixture(autouse=True)
    def _encore_fixture_store(self: Any, request: Any) -> None:
        # Runs before unittest's setUp, which asks the factory for the store.
        self._encore_store = request.getfixturevalue(fixture)

    def factory(test: Any) -> Any:
        return test._encore_store

    module = sys._getframe(1).f_globals.get("__name__", __name__)
    merged: Dict[str, Dict[str, Any]] = {}
    for label in CONFORMANCE_MIXINS:
        merged[label] = dict((attributes or {}).get(label, {}))
        merged[label]["_encore_fixture_store"] = _encore_fixture_store
        merged[label].setdefault("__module__", module)
    unknown = set(attributes or {}) - set(CONFORMANCE_MIXINS)
    if unknown:
        raise ValueError("unknown conformance mixins: {}".format(", ".join(sorted(unknown))))
    return store_test_cases(factory, prefix, include=include, exclude=exclude,
                            fixtures=fixtures, attributes=merged)

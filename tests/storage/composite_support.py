"""What the composite stores' test modules share: child stores of every kind,
and the generation of one unittest class per (child kind, conformance mixin)."""
import os

from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.filesystem_store import FileSystemStore, init_shared_store
from encore.storage.sqlite_store import SqliteStore
from encore.storage.tests.abstract_test import CONFORMANCE_MIXINS, store_test_cases

#: The kinds of child store every composite is tested over.
CHILD_KINDS = ["dict", "sqlite", "filesystem"]


def make_child(kind, directory, name, event_manager):
    """A connected, empty child store of a kind, kept under ``directory``."""
    if kind == "dict":
        store = DictMemoryStore(event_manager=event_manager)
    elif kind == "sqlite":
        store = SqliteStore(os.path.join(directory, name + ".db"), event_manager=event_manager)
    elif kind == "filesystem":
        path = os.path.join(directory, name)
        os.mkdir(path)
        init_shared_store(path)
        store = FileSystemStore(path, event_manager=event_manager)
    else:  # pragma: no cover
        raise ValueError(kind)
    store.connect()
    return store


def data(stream):
    """Read a stream to the end and close it."""
    try:
        return stream.read()
    finally:
        stream.close()


def make_mixin_classes(prefix, case, read, write, large, extra=None):
    """One ``unittest.TestCase`` per child kind and conformance mixin.

    Parameters
    ----------
    prefix : str
        Start of the class names, e.g. ``'TestJoined'``.
    case : type
        The composite's base test case (builds ``self.store``).
    read, write, large : type
        The composite's own read, write and large-value mixin classes
        (they need fixtures of their own).
    extra : callable, optional
        ``extra(kind, label)`` returns more class attributes.

    Returns
    -------
    dict
        Class name to class, for ``globals().update``.
    """
    made = {}
    for kind in CHILD_KINDS:
        attributes = {label: {"kind": kind} for label in CONFORMANCE_MIXINS}
        if kind == "dict":
            # Memory is the dict store's medium: nothing to bound.
            attributes["LargeValues"].update(streaming=False, large_value_size=8 << 20)
        if extra is not None:
            for label in CONFORMANCE_MIXINS:
                attributes[label].update(extra(kind, label))
        made.update(store_test_cases(
            prefix=prefix + kind.capitalize(), base=case, attributes=attributes,
            overrides={"Read": read, "Write": write, "LargeValues": large}))
    return made

"""Fixtures shared by the event tests."""
import gc

import pytest

from encore.events import package_globals
from encore.events.event_manager import EventManager

from .helpers import Recorder


@pytest.fixture
def manager():
    """A fresh, private event manager."""
    return EventManager()


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def global_manager_reset():
    """Run the test with no package-wide manager, restoring the old one afterwards."""
    saved = package_globals._event_manager
    package_globals._event_manager = None
    try:
        yield
    finally:
        package_globals._event_manager = saved


@pytest.fixture
def collect():
    """Force full garbage collections, so weak references die now."""

    def run():
        for _ in range(3):
            gc.collect()

    return run

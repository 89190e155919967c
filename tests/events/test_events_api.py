"""encore.events.api re-exports the public names."""
import encore.events.api as api
from encore.events import (
    abstract_event_manager,
    event_manager,
    heartbeat,
    package_globals,
    progress_events,
)

EXPECTED = {
    "BaseEvent": abstract_event_manager,
    "BaseEventManager": abstract_event_manager,
    "EventManager": event_manager,
    "ProgressEvent": progress_events,
    "ProgressStartEvent": progress_events,
    "ProgressStepEvent": progress_events,
    "ProgressEndEvent": progress_events,
    "ProgressManager": progress_events,
    "Heartbeat": heartbeat,
    "HeartbeatEvent": heartbeat,
    "get_event_manager": package_globals,
    "set_event_manager": package_globals,
}


def test_every_public_name_is_exported_from_its_module():
    assert sorted(api.__all__) == sorted(EXPECTED)
    for name, module in EXPECTED.items():
        assert getattr(api, name) is getattr(module, name), name


def test_star_import():
    namespace = {}
    exec("from encore.events.api import *", namespace)
    assert set(EXPECTED) <= set(namespace)


def test_event_manager_module_names():
    for name in ("EventManager", "EventInfo", "CallableNotifier", "MethodNotifier", "LoggingTracer"):
        assert hasattr(event_manager, name)

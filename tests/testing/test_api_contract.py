"""The documented API of events, concurrent, terminal, util and testing.

Encore 0.8 programs must run unchanged, so every module path, class,
function and method named in Encore's manual and in the specification of
these packages must exist with a compatible signature: the same parameter
names in the same positions, the same defaults, and any parameter we added
optional.  (The storage packages check their own API.)
"""
import importlib
import inspect
import itertools
import logging

import pytest

P = inspect.Parameter

#: Documented name -> documented signature (as Python source).
SIGNATURES = {
    # encore.events
    "encore.events.abstract_event_manager.BaseEvent": "(source=None, **kwargs)",
    "encore.events.abstract_event_manager.BaseEvent.mark_as_handled": "(self)",
    "encore.events.abstract_event_manager.BaseEvent.pre_emit": "(self)",
    "encore.events.abstract_event_manager.BaseEvent.post_emit": "(self)",
    "encore.events.abstract_event_manager.BaseEventManager.connect": "(self, cls, func, filter=None, priority=0)",
    "encore.events.abstract_event_manager.BaseEventManager.disconnect": "(self, cls, func)",
    "encore.events.abstract_event_manager.BaseEventManager.emit": "(self, event, block=True)",
    "encore.events.abstract_event_manager.BaseEventManager.enable": "(self, cls)",
    "encore.events.abstract_event_manager.BaseEventManager.disable": "(self, cls)",
    "encore.events.abstract_event_manager.BaseEventManager.is_enabled": "(self, cls)",
    "encore.events.event_manager.EventManager": "()",
    "encore.events.event_manager.EventManager.register": "(self, cls)",
    "encore.events.event_manager.EventManager.connect": "(self, cls, func, filter=None, priority=0)",
    "encore.events.event_manager.EventManager.disconnect": "(self, cls, func)",
    "encore.events.event_manager.EventManager.emit": "(self, event, block=True)",
    "encore.events.event_manager.EventManager.get_event": "(self, cls=None)",
    "encore.events.event_manager.EventManager.get_listeners": "(self, event, cls=None)",
    "encore.events.event_manager.EventManager.enable": "(self, cls)",
    "encore.events.event_manager.EventManager.disable": "(self, cls)",
    "encore.events.event_manager.EventManager.is_enabled": "(self, cls)",
    "encore.events.event_manager.EventManager.get_event_hierarchy": "(self, cls)",
    "encore.events.event_manager.EventManager.set_trace": "(self, func)",
    "encore.events.event_manager.LoggingTracer": (
        "(logger=logging.getLogger('encore.events.event_manager'), level=20)"
    ),
    "encore.events.event_manager.LoggingTracer.__call__": "(self, name, func, *args, **kwds)",
    "encore.events.event_manager.CallableNotifier": "(func, notify=None, args=())",
    "encore.events.event_manager.CallableNotifier.__call__": "(self, *args, **kwds)",
    "encore.events.event_manager.MethodNotifier": "(meth, notify=None, args=())",
    "encore.events.event_manager.MethodNotifier.__call__": "(self, *args, **kwds)",
    "encore.events.event_manager.MethodNotifier.notify": "(self)",
    "encore.events.event_manager.EventInfo": "(cls)",
    "encore.events.event_manager.EventInfo.connect": "(self, func, filter=None, priority=0)",
    "encore.events.event_manager.EventInfo.disconnect": "(self, func)",
    "encore.events.event_manager.EventInfo.enable": "(self)",
    "encore.events.event_manager.EventInfo.disable": "(self)",
    "encore.events.event_manager.EventInfo.is_enabled": "(self)",
    "encore.events.event_manager.EventInfo.get_id": "(self, func)",
    "encore.events.event_manager.EventInfo.get_listeners": "(self, event)",
    "encore.events.progress_events.ProgressManager": (
        "(event_manager=None, source=None, operation_id=None,"
        " message='Performing operation', steps=-1, **kwargs)"
    ),
    "encore.events.progress_events.ProgressManager.start": "(self, **extra_kwargs)",
    "encore.events.progress_events.ProgressManager.step": "(self, message=None, step=None, **extra_kwargs)",
    "encore.events.progress_events.ProgressManager.end": "(self, message=None, exit_state='normal', **extra_kwargs)",
    "encore.events.progress_events.ProgressManager.__call__": "(self, message=None, step=None, **extra_kwargs)",
    "encore.events.progress_events.ProgressManager.__enter__": "(self)",
    "encore.events.progress_events.ProgressManager.__exit__": "(self, exc_type, exc_value, traceback)",
    "encore.events.progress_events.ProgressEvent": "(source=None, **kwargs)",
    "encore.events.progress_events.ProgressStartEvent": "(source=None, **kwargs)",
    "encore.events.progress_events.ProgressStepEvent": "(source=None, **kwargs)",
    "encore.events.progress_events.ProgressEndEvent": "(source=None, **kwargs)",
    "encore.events.heartbeat.HeartbeatEvent": "(source=None, **kwargs)",
    "encore.events.heartbeat.Heartbeat": "(interval=1/50., event_manager=None)",
    "encore.events.heartbeat.Heartbeat.run": "(self)",
    "encore.events.heartbeat.Heartbeat.serve": "(self)",
    "encore.events.package_globals.get_event_manager": "()",
    "encore.events.package_globals.set_event_manager": "(event_manager)",
    # encore.concurrent
    "encore.concurrent.threadtools.synchronized": "(func)",
    "encore.concurrent.futures.future.Future": "()",
    "encore.concurrent.futures.future.Future.traceback": "(self)",
    "encore.concurrent.futures.SynchronousExecutor": "()",
    "encore.concurrent.futures.synchronous.SynchronousExecutor": "()",
    "encore.concurrent.futures.synchronous.SynchronousExecutor.submit": "(self, fn, *args, **kwargs)",
    "encore.concurrent.futures.synchronous.SynchronousExecutor.shutdown": "(self, wait=True)",
    "encore.concurrent.futures.enhanced_thread_pool_executor.EnhancedThreadPoolExecutor": (
        "(max_workers, initializer=None, uninitializer=None, name=None, wait_at_exit=True)"
    ),
    "encore.concurrent.futures.enhanced_thread_pool_executor.EnhancedThreadPoolExecutor.submit": "(self, fn, *args, **kwargs)",
    "encore.concurrent.futures.enhanced_thread_pool_executor.EnhancedThreadPoolExecutor.shutdown": "(self, wait=True)",
    "encore.concurrent.futures.enhanced_thread_pool_executor.EnhancedThreadPoolExecutor.map": "(self, fn, *iterables, **kwargs)",
    "encore.concurrent.futures.synchronous.SynchronousExecutor.map": "(self, fn, *iterables, **kwargs)",
    "encore.concurrent.futures.abc_work_scheduler.ABCWorkScheduler.__init__": "(self, executor, name=None, callback=None)",
    "encore.concurrent.futures.abc_work_scheduler.ABCWorkScheduler.submit": "(self, operation, *args, **kwargs)",
    "encore.concurrent.futures.abc_work_scheduler.ABCWorkScheduler.wait": "(self)",
    "encore.concurrent.futures.abc_work_scheduler.ABCWorkScheduler.shutdown": "(self)",
    "encore.concurrent.futures.abc_work_scheduler.ABCWorkScheduler._add_pending_operation": "(self, operation, args, kwargs)",
    "encore.concurrent.futures.abc_work_scheduler.ABCWorkScheduler._get_next_operation": "(self)",
    "encore.concurrent.futures.asynchronizer.Asynchronizer": "(executor, name=None, callback=None)",
    "encore.concurrent.futures.delayed_asynchronizer.DelayedAsynchronizer": (
        "(executor, interval, name=None, callback=None, timer_factory=None)"
    ),
    "encore.concurrent.futures.serializer.Serializer": "(executor, name=None, callback=None)",
    "encore.concurrent.futures.serializing_asynchronizer.SerializingAsynchronizer": "(executor, name=None, callback=None)",
    # encore.terminal
    "encore.terminal.api.write_static": "(s)",
    "encore.terminal.utils.write_static": "(s)",
    "encore.terminal.api.ProgressDisplay": "(event_manager=None)",
    "encore.terminal.api.ProgressDisplay.start_listener": "(self, event)",
    "encore.terminal.api.ProgressWriter": "(display, operation_id, steps)",
    "encore.terminal.api.ProgressWriter.step_listener": "(self, event)",
    "encore.terminal.api.ProgressWriter.end_listener": "(self, event)",
    "encore.terminal.api.SpinWriter": "(display, operation_id)",
    "encore.terminal.api.SpinWriter.step_listener": "(self, event)",
    "encore.terminal.api.SpinWriter.end_listener": "(self, event)",
    "encore.terminal.progress_display.ProgressDisplay": "(event_manager=None)",
    # encore.util
    "encore.util.human_date.makeEpochTime": "(date_time)",
    "encore.util.human_date.convertToHumanReadable": "(date_time, utc=False)",
    "encore.util.human_date.makeFancyDatetime": "(req_datetime)",
    "encore.util.human_date.test": "()",
    # encore.testing
    "encore.testing.asserts.assert_python_ok": "(*args, **env_vars)",
    "encore.testing.asserts.strip_python_stderr": "(stderr)",
}

#: Parameters that are positional-only on purpose: the standard library's
#: executors made ``fn`` positional-only (so jobs may take an ``fn=``
#: keyword), and ours follow.
POSITIONAL_ONLY_ALLOWED = {"fn"}

#: Documented attributes: dotted owner -> (how to get an instance, names).
ATTRIBUTES = {
    "encore.events.event_manager.EventManager": (
        lambda cls: cls(), ["event_map", "count", "_trace_func", "bmro_clip"]),
    "encore.events.progress_events.ProgressManager": (
        None, ["StartEventType", "StepEventType", "EndEventType"]),
    "encore.events.heartbeat.Heartbeat": (
        lambda cls: cls(event_manager=_manager()), ["state", "interval", "frame_count"]),
    "encore.concurrent.futures.enhanced_thread_pool_executor.EnhancedThreadPoolExecutor": (
        None, ["_future_factory"]),
    "encore.terminal.progress_display.ProgressDisplay": (
        lambda cls: cls(_manager()), ["writers", "progress_writer", "spin_writer"]),
    "encore.events.package_globals": (None, ["_event_manager"]),
}

#: The names each ``api`` module re-exports.
API_EXPORTS = {
    "encore.events.api": [
        "BaseEvent", "BaseEventManager", "EventManager", "ProgressEvent", "ProgressStartEvent",
        "ProgressStepEvent", "ProgressEndEvent", "ProgressManager", "Heartbeat", "HeartbeatEvent",
        "get_event_manager", "set_event_manager",
    ],
    "encore.terminal.api": ["ProgressDisplay", "SpinWriter", "ProgressWriter", "write_static"],
    "encore.concurrent.futures": ["SynchronousExecutor"],
}


def _manager():
    from encore.events.event_manager import EventManager

    return EventManager()


def resolve(path):
    """Import the longest importable prefix of ``path``, then getattr the rest."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(path)


def incompatibilities(actual, documented_source):
    """List the ways ``actual`` (a Signature) cannot stand in for the documented one."""
    namespace = {"logging": logging}
    exec("def documented" + documented_source + ": pass", namespace)
    documented = inspect.signature(namespace["documented"])
    problems = []
    positional_kinds = (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)
    actual_params = list(actual.parameters.values())
    actual_positional = [p for p in actual_params if p.kind in positional_kinds]
    has_var_positional = any(p.kind == P.VAR_POSITIONAL for p in actual_params)
    has_var_keyword = any(p.kind == P.VAR_KEYWORD for p in actual_params)
    documented_positional = []
    for wanted in documented.parameters.values():
        if wanted.kind in positional_kinds:
            documented_positional.append(wanted)
        elif wanted.kind == P.VAR_POSITIONAL and not has_var_positional:
            problems.append("no *{}".format(wanted.name))
        elif wanted.kind == P.VAR_KEYWORD and not has_var_keyword:
            problems.append("no **{}".format(wanted.name))
    for wanted, got in itertools.zip_longest(documented_positional, actual_positional):
        if got is None:
            if not has_var_positional:
                problems.append("missing parameter {}".format(wanted.name))
            continue
        if wanted is None:
            if got.default is P.empty:
                problems.append("extra required parameter {}".format(got.name))
            continue
        if got.name != wanted.name:
            problems.append("parameter {!r} is called {!r}".format(wanted.name, got.name))
        if got.kind == P.POSITIONAL_ONLY and wanted.name not in POSITIONAL_ONLY_ALLOWED | {"self"}:
            problems.append("{} is positional-only".format(wanted.name))
        if wanted.default is not P.empty and got.default != wanted.default:
            problems.append("default of {} is {!r}, not {!r}".format(wanted.name, got.default, wanted.default))
    for got in actual_params:
        if got.kind == P.KEYWORD_ONLY and got.default is P.empty:
            problems.append("extra required keyword {}".format(got.name))
    return problems


@pytest.mark.parametrize("path", sorted(SIGNATURES))
def test_documented_name_exists_with_a_compatible_signature(path):
    obj = resolve(path)
    documented = SIGNATURES[path]
    if documented is None:
        assert inspect.isclass(obj), path
        return
    assert incompatibilities(inspect.signature(obj), documented) == []


@pytest.mark.parametrize("owner", sorted(ATTRIBUTES))
def test_documented_attributes_exist(owner):
    obj = resolve(owner)
    make, names = ATTRIBUTES[owner]
    if make is not None:
        obj = make(obj)
    missing = [name for name in names if not hasattr(obj, name)]
    assert missing == []


@pytest.mark.parametrize("module", sorted(API_EXPORTS))
def test_api_modules_export_the_documented_names(module):
    namespace = {}
    exec("from {} import *".format(module), namespace)
    assert set(API_EXPORTS[module]) <= set(namespace)


def test_the_checker_catches_incompatibilities():
    # The comparison itself must be able to fail.
    def renamed(self, klass, func, filter=None, priority=0):
        pass

    def new_default(self, event, block=False):
        pass

    def new_required(self, cls, func, filter=None, priority=0, *, extra):
        pass

    def fine(self, cls, func, filter=None, priority=0, extra=None, **more):
        pass

    documented = "(self, cls, func, filter=None, priority=0)"
    assert incompatibilities(inspect.signature(renamed), documented) == [
        "parameter 'cls' is called 'klass'"
    ]
    assert incompatibilities(inspect.signature(new_default), "(self, event, block=True)") == [
        "default of block is False, not True"
    ]
    assert incompatibilities(inspect.signature(new_required), documented) == [
        "extra required keyword extra"
    ]
    assert incompatibilities(inspect.signature(fine), documented) == []

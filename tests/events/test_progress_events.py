"""ProgressManager and the progress events."""
import pytest

from encore.events.api import (
    BaseEvent,
    ProgressEndEvent,
    ProgressEvent,
    ProgressManager,
    ProgressStartEvent,
    ProgressStepEvent,
    get_event_manager,
)


@pytest.fixture
def received(manager):
    events = []
    manager.connect(ProgressEvent, events.append)
    return events


def kinds(events):
    return [type(event).__name__ for event in events]


def test_progress_event_hierarchy():
    for cls in (ProgressStartEvent, ProgressStepEvent, ProgressEndEvent):
        assert issubclass(cls, ProgressEvent)
    assert issubclass(ProgressEvent, BaseEvent)


def test_defaults(manager):
    progress = ProgressManager(manager)
    assert progress.event_manager is manager
    assert progress.source is progress
    assert progress.operation_id is not None
    assert ProgressManager(manager).operation_id != progress.operation_id
    assert progress.message == "Performing operation"
    assert progress.steps == -1
    assert ProgressManager.StartEventType is ProgressStartEvent
    assert ProgressManager.StepEventType is ProgressStepEvent
    assert ProgressManager.EndEventType is ProgressEndEvent


def test_default_event_manager_is_the_package_one(global_manager_reset):
    progress = ProgressManager()
    assert progress.event_manager is get_event_manager()


def test_start_step_end(manager, received):
    source = object()
    progress = ProgressManager(manager, source, "op-1", "Copying", 3)
    progress.start()
    progress.step()
    progress.step("second part")
    progress.step(step=7)
    progress.end()
    assert kinds(received) == [
        "ProgressStartEvent", "ProgressStepEvent", "ProgressStepEvent", "ProgressStepEvent",
        "ProgressEndEvent",
    ]
    assert all(event.source is source and event.operation_id == "op-1" for event in received)
    start, first, second, third, end = received
    assert (start.message, start.steps) == ("Copying", 3)
    assert (first.message, first.step) == ("Copying", 0)
    assert (second.message, second.step) == ("second part", 1)
    assert third.step == 7
    assert (end.message, end.exit_state) == ("Copying", "normal")


def test_step_counter_counts_every_call_and_is_never_reset(manager, received):
    progress = ProgressManager(manager)
    progress.start()
    progress.step(step=10)
    progress.step()  # the counter went up on the explicit call too
    progress.end()
    progress.start()
    progress.step()
    assert [event.step for event in received if isinstance(event, ProgressStepEvent)] == [10, 1, 2]


def test_end_with_message_and_state(manager, received):
    progress = ProgressManager(manager)
    progress.start()
    progress.end("went badly", exit_state="warning")
    assert (received[-1].message, received[-1].exit_state) == ("went badly", "warning")


def test_extra_kwargs_on_every_event(manager, received):
    progress = ProgressManager(manager, key="some/key", size=12)
    progress.start(extra="start only")
    progress.step(size=13)
    progress.end(note="bye")
    start, step, end = received
    assert (start.key, start.size, start.extra) == ("some/key", 12, "start only")
    assert (step.key, step.size) == ("some/key", 13)
    assert not hasattr(step, "extra")
    assert (end.key, end.note) == ("some/key", "bye")


def test_step_and_end_need_a_running_operation(manager, received):
    progress = ProgressManager(manager)
    assert not progress.running
    with pytest.raises(Exception):
        progress.step()
    with pytest.raises(Exception):
        progress.end()
    progress.start()
    assert progress.running
    progress.end()
    assert not progress.running
    with pytest.raises(Exception):
        progress.end()
    with pytest.raises(Exception):
        progress.step()
    assert kinds(received) == ["ProgressStartEvent", "ProgressEndEvent"]


def test_call_starts_if_needed_then_steps(manager, received):
    progress = ProgressManager(manager, message="Working")
    progress("first")
    progress(step=5)
    assert kinds(received) == ["ProgressStartEvent", "ProgressStepEvent", "ProgressStepEvent"]
    assert (received[1].message, received[1].step) == ("first", 0)
    assert (received[2].message, received[2].step) == ("Working", 5)


def test_context_manager_normal_exit(manager, received):
    with ProgressManager(manager, steps=2) as progress:
        assert progress.running
        progress()
        progress()
    assert not progress.running
    assert kinds(received) == [
        "ProgressStartEvent", "ProgressStepEvent", "ProgressStepEvent", "ProgressEndEvent",
    ]
    assert received[-1].exit_state == "normal"


def test_context_manager_exception_exit(manager, received):
    with pytest.raises(ValueError):
        with ProgressManager(manager) as progress:
            progress()
            raise ValueError("disk full")
    assert not progress.running
    end = received[-1]
    assert isinstance(end, ProgressEndEvent)
    assert end.exit_state == "exception"
    assert end.message == "disk full"


def test_context_manager_after_explicit_end(manager, received):
    with ProgressManager(manager) as progress:
        progress.end("done early", exit_state="warning")
    assert kinds(received) == ["ProgressStartEvent", "ProgressEndEvent"]
    assert received[-1].exit_state == "warning"


def test_context_manager_does_not_restart_running_operation(manager, received):
    progress = ProgressManager(manager)
    progress.start()
    with progress:
        pass
    assert kinds(received) == ["ProgressStartEvent", "ProgressEndEvent"]


def test_filtered_listener_per_operation(manager):
    # The progress-bar pattern of the manual: listen to one operation only.
    steps = []
    manager.connect(ProgressStepEvent, lambda event: steps.append(event.step), filter={"operation_id": "mine"})
    with ProgressManager(manager, operation_id="mine") as mine, ProgressManager(
        manager, operation_id="other"
    ) as other:
        mine()
        other()
        mine()
    assert steps == [0, 1]


def test_subclass_event_types(manager):
    class CustomStart(ProgressStartEvent):
        pass

    class CustomProgress(ProgressManager):
        StartEventType = CustomStart

    seen = []
    manager.connect(CustomStart, seen.append)
    with CustomProgress(manager):
        pass
    assert len(seen) == 1


def test_end_state_spelling_of_the_manual_is_accepted(manager, received):
    progress = ProgressManager(manager)
    progress.start()
    progress.end(message="Failure mode 1", end_state="warning")
    end = received[-1]
    assert end.exit_state == "warning"
    assert end.end_state == "warning"
    progress.start()
    progress.end(exit_state="error", end_state="warning")  # the real name wins
    assert received[-1].exit_state == "error"


def test_stop_is_the_manuals_other_name_for_end(manager, received):
    progress = ProgressManager(manager, message="op")
    with pytest.raises(Exception):
        progress.stop()
    progress.start()
    progress.stop("finished early", "warning", reason="user")
    end = received[-1]
    assert isinstance(end, ProgressEndEvent)
    assert (end.message, end.exit_state, end.reason) == ("finished early", "warning", "user")
    assert not progress.running
    with pytest.raises(Exception):
        progress.step()

"""The examples of Encore's event manual, run as an Encore 0.8 program would.

They are kept close to the manual's code (adapted only where it is not
runnable as printed), so any incompatibility with Encore's API shows here.
"""
import logging
import os
import threading
from uuid import uuid4

import pytest

from encore.events.api import (
    BaseEvent,
    EventManager,
    ProgressEndEvent,
    ProgressManager,
    ProgressStartEvent,
    ProgressStepEvent,
)

logger = logging.getLogger("manual.example")


class FileEvent(BaseEvent):
    """Event generated when a file is operated upon."""


class OpenEvent(FileEvent):
    pass


class SaveEvent(FileEvent):
    pass


class DeleteEvent(FileEvent):
    pass


class App(object):
    def __init__(self):
        self.event_manager = EventManager()


class File(object):
    def __init__(self, app, directory, filename, data=b""):
        self.app = app
        self.directory = directory
        self.filename = filename
        self.data = data

    def save(self):
        event_manager = self.app.event_manager
        path = os.path.join(self.directory, self.filename)
        op_id = uuid4()
        steps = range(0, len(self.data), 2**20)
        with open(path, "wb") as fp:
            with ProgressManager(event_manager, self, op_id, 'Saving "%s"' % path, len(steps)) as progress:
                for i, pos in enumerate(steps):
                    fp.write(self.data[pos:pos + 2**20])
                    progress('Saving "%s" (%d of %d bytes)' % (path, pos, len(self.data)), step=i + 1)
        event_manager.emit(SaveEvent(source=self, directory=self.directory, filename=self.filename))


def test_saving_emits_progress_then_the_save_event(tmp_path):
    app = App()
    seen = []
    app.event_manager.connect(BaseEvent, seen.append)
    document = File(app, str(tmp_path), "baz.txt", b"x" * (2**20 * 2 + 5))
    document.save()
    kinds = [type(event) for event in seen]
    assert kinds == [ProgressStartEvent, ProgressStepEvent, ProgressStepEvent, ProgressStepEvent,
                     ProgressEndEvent, SaveEvent]
    start, end, save = seen[0], seen[-2], seen[-1]
    assert start.source is document and start.steps == 3
    assert start.message == 'Saving "%s"' % os.path.join(str(tmp_path), "baz.txt")
    assert [event.step for event in seen[1:4]] == [1, 2, 3]
    assert end.exit_state == "normal"
    assert len({event.operation_id for event in seen[:5]}) == 1
    assert (save.directory, save.filename) == (str(tmp_path), "baz.txt")
    assert (tmp_path / "baz.txt").read_bytes() == document.data


def test_priorities_and_handled_events_avoid_double_logging(caplog):
    event_manager = EventManager()

    def save_logger(event):
        path = os.path.join(event.directory, event.filename)
        logger.info("Saved file '%s'" % path)
        event.mark_as_handled()

    def file_event_logger(event):
        path = os.path.join(event.directory, event.filename)
        logger.info("%s: file '%s'" % (event.__class__.__name__, path))

    event_manager.connect(SaveEvent, save_logger, priority=100)
    event_manager.connect(FileEvent, file_event_logger, priority=50)
    with caplog.at_level(logging.INFO, logger="manual.example"):
        event_manager.emit(SaveEvent(source=None, directory="foo/bar", filename="baz.txt"))
        event_manager.emit(OpenEvent(source=None, directory="foo", filename="a.txt"))
    assert [record.getMessage() for record in caplog.records if record.name == "manual.example"] == [
        "Saved file 'foo/bar/baz.txt'",
        "OpenEvent: file 'foo/a.txt'",
    ]
    event_manager.disconnect(SaveEvent, save_logger)
    with pytest.raises(KeyError):
        event_manager.disconnect(SaveEvent, save_logger)


def test_filtered_bound_method_listener_and_its_automatic_disconnection():
    app = App()

    class Project(object):
        def __init__(self, app, directory):
            self.app = app
            self.directory = directory
            self._needs_compile = False
            self._connect_listener()

        def directory_listener(self, event):
            self._needs_compile = True

        def _connect_listener(self):
            self.app.event_manager.connect(SaveEvent, self.directory_listener,
                                           filter={"directory": self.directory})

    project = Project(app, "src")
    app.event_manager.emit(SaveEvent(source=None, directory="docs", filename="a.txt"))
    assert project._needs_compile is False
    app.event_manager.emit(SaveEvent(source=None, directory="src", filename="a.py"))
    assert project._needs_compile is True
    assert len(list(app.event_manager.get_listeners(SaveEvent))) == 1
    del project
    import gc

    gc.collect()
    assert list(app.event_manager.get_listeners(SaveEvent)) == []


def test_disabling_is_kept_per_class():
    event_manager = EventManager()
    seen = []
    event_manager.connect(BaseEvent, seen.append)
    event_manager.disable(SaveEvent)
    event_manager.disable(FileEvent)
    event_manager.enable(FileEvent)
    assert not event_manager.is_enabled(SaveEvent)
    assert event_manager.is_enabled(OpenEvent)
    event_manager.emit(SaveEvent(source=None))
    event_manager.emit(OpenEvent(source=None))
    assert [type(event) for event in seen] == [OpenEvent]
    event_manager.disable(BaseEvent)
    event_manager.emit(OpenEvent(source=None))
    assert len(seen) == 1


def test_non_blocking_emit_returns_the_thread():
    event_manager = EventManager()
    seen = threading.Event()
    event_manager.connect(SaveEvent, lambda event: seen.set())
    thread = event_manager.emit(SaveEvent(source=None), block=False)
    thread.join(10)
    assert not thread.is_alive()
    assert seen.is_set()


def test_fine_grained_progress_reporting_of_the_manual():
    # The manual's second ProgressManager example (with its end_state= spelling).
    event_manager = EventManager()
    ends = []
    event_manager.connect(ProgressEndEvent, ends.append)
    for failure, expected in ((None, "normal"), (KeyError, "warning"), (ValueError, "error"),
                              (RuntimeError, "exception")):
        progress = ProgressManager(event_manager, None, uuid4(), "Performing operation", 3)
        progress.start()
        try:
            for step in range(3):
                if failure is not None and step == 1:
                    raise failure("failed at %d" % step)
                progress(step)
        except KeyError:
            progress.end(message="Failure mode 1", end_state="warning")
        except ValueError:
            progress.end(message="Failure mode 2", end_state="error")
        except Exception as exc:
            progress.end(message=str(exc), end_state="exception")
        else:
            progress.end(message="Success", end_state="normal")
        assert ends[-1].exit_state == expected
    assert [event.message for event in ends] == [
        "Success", "Failure mode 1", "Failure mode 2", "failed at 1"]

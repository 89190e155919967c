"""The ``encore`` command: inspect stores and move data between them.

::

    encore [--store STORE] ls [-l] [GLOB]
    encore [--store STORE] get KEY [-o FILE|-]
    encore [--store STORE] put KEY FILE|- [--meta NAME=TEXT NAME:=JSON ...] [--merge]
    encore [--store STORE] put -r DIR PREFIX [--meta ...] [--merge]
    encore [--store STORE] meta [-l] KEY [--set NAME=TEXT ...] [--unset NAME ...] [--replace]
    encore [--store STORE] query NAME=TEXT|NAME:=JSON ...
    encore [--store STORE] rm KEY ...
    encore cp SRC DST [GLOB]
    encore [--store STORE] serve [--host HOST] [--port PORT]

``STORE`` is a store URL (see :func:`encore.storage.open_store`) or a bare
path: an existing directory, or a path ending in ``/``, is a file system
store; any other path is an SQLite database file.  The default is
``sqlite:///./encore.db``, or the ``ENCORE_STORE`` environment variable.
The options ``--store`` and ``--quiet`` may come before or after the
command name.

Metadata values follow one rule (httpie's): ``name=text`` is always a
string (``version=1.10`` stays ``"1.10"``), ``name:=json`` is JSON
(``n:=3``, ``flag:=true``, ``tags:='["a"]'``).  ``encore meta`` prints
metadata as UTF-8 JSON, values beyond JSON (``datetime``, ``Decimal``,
``bytes``, sets, ``UUID``...) in their tagged form
(``{"$encore:date": "2024-05-01"}``), which ``name:=json`` reads back.

Glob patterns (``ls``, ``cp``) are matched against whole keys with
:func:`fnmatch.fnmatchcase`: ``*`` matches any run of characters
*including* ``/`` (unlike a shell), ``?`` one character, ``[abc]`` one of
a set.  So ``ls 'docs/*'`` lists every key under ``docs/``, however deep.

Only commands that write (``put``, ``meta --set``, ``rm`` and the
destination of ``cp``) may create a store; the others refuse a store that
does not exist.  Every failure is reported as one line ``encore: ...`` on
the standard error stream, with a non-zero status: 1 for a failed
operation, 2 for bad usage, 130 after Ctrl-C (the write in progress is
rolled back) and 141 when the reader of the output went away (``encore ls
| head -1``; nothing is printed).  Set ``ENCORE_DEBUG=1`` to see the
traceback of an unexpected error.

Progress, drawn by :class:`~encore.terminal.progress_display.ProgressDisplay`
on the standard error stream, is animated on a terminal and reduced to one
line per operation otherwise; ``--quiet`` turns it off.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import logging
import os
import posixpath
import re
import sqlite3
import stat
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, Iterator, List, NoReturn, Optional, Sequence, TextIO, Tuple

from encore import __version__, _cli_network
from encore.events.event_manager import EventManager
from encore.events.progress_events import ProgressManager
from encore.storage import open_store, sqlite_location
from encore.storage._atomic_file import replacing
from encore.storage._metadata_codec import decode_metadata, to_json
from encore.terminal.progress_display import ProgressDisplay, _is_terminal, format_size

logger = logging.getLogger(__name__)

#: The store used when neither ``--store`` nor ``ENCORE_STORE`` is given.
DEFAULT_STORE = "sqlite:///./encore.db"

#: The buffer size used to move data.
BUFFER_SIZE = 1024 * 1024

#: The optional packages and the extra of encore that installs each.
_EXTRAS = {"requests": "http", "obstore": "s3", "boto3": "s3", "botocore": "s3"}

_URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


class CommandError(Exception):
    """A failure to report as one line ``encore: <message>`` (status 1)."""


class UsageError(Exception):
    """Bad usage of the command, reported as one line (status 2)."""


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------


def parse_assignment(text: str) -> Tuple[str, Any]:
    """Read one metadata item: ``NAME=TEXT`` or ``NAME:=JSON``.

    The rule is httpie's: after ``=`` the value is always a string, after
    ``:=`` it is JSON.  The first ``=`` separates the name from the value.
    The JSON may hold the tagged values that ``encore meta`` prints (see
    :mod:`encore.storage._metadata_codec`): ``'day:={"$encore:date":
    "2024-05-01"}'`` is a :class:`datetime.date`.

    Parameters
    ----------
    text : str
        The item, e.g. ``'version=1.10'``, ``'n:=3'`` or
        ``'tags:=["a", "b"]'``.

    Returns
    -------
    tuple of (str, object)
        The name and the value.

    Raises
    ------
    argparse.ArgumentTypeError
        If there is no ``=``, the name is empty, or the value after ``:=``
        is not JSON or holds an unknown or malformed tagged value.

    Examples
    --------
    >>> parse_assignment("version=1.10")
    ('version', '1.10')
    >>> parse_assignment("n:=3")
    ('n', 3)
    """
    name, separator, raw = text.partition("=")
    if not separator:
        raise argparse.ArgumentTypeError(
            "expected NAME=TEXT or NAME:=JSON, got {!r}".format(text))
    is_json = name.endswith(":")
    if is_json:
        name = name[:-1]
    if not name:
        raise argparse.ArgumentTypeError("the name is empty in {!r}".format(text))
    if not is_json:
        return name, raw
    try:
        value = decode_metadata(raw)
    except (json.JSONDecodeError, RecursionError):
        raise argparse.ArgumentTypeError(
            "{}:= expects JSON, got {!r} (write {}={} for text)".format(name, raw, name, raw)
        ) from None
    except ValueError as error:  # an unknown or malformed tagged value
        raise argparse.ArgumentTypeError("{}:= {}".format(name, error)) from None
    return name, value


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("the port must be a number, got {!r}".format(text)) from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            "the port must be between 0 and 65535 (0 picks a free one), got {}".format(port))
    return port


def _name(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("empty metadata name")
    return text


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, not a usage screen."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _build_parser() -> argparse.ArgumentParser:
    # The options shared by every command are accepted before and after the
    # command name; SUPPRESS keeps a later default from hiding an earlier value.
    common = _Parser(add_help=False)
    common.add_argument(
        "--store", "-s", default=argparse.SUPPRESS, metavar="STORE",
        help="store URL or path (default: $ENCORE_STORE or {})".format(DEFAULT_STORE))
    common.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                        help="draw no progress")

    parser = _Parser(
        prog="encore",
        parents=[common],
        description="Inspect key-value stores and move data between them.",
        epilog=("Metadata: name=text is a string, name:=json is JSON. Globs match whole keys "
                "and '*' also matches '/'. STORE is a URL (sqlite:///x.db, file:///dir, "
                "http://host:port, static+http://host/root, memory://) or a path."),
    )
    parser.add_argument("--version", action="version", version="encore " + __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, parents=[common])

    glob_help = "a glob matched against whole keys ('*' also matches '/')"

    ls = command("ls", "list keys, optionally those matching a glob")
    ls.add_argument("pattern", nargs="?", default=None, metavar="GLOB", help=glob_help)
    ls.add_argument("-l", "--long", action="store_true", help="show size and modification time")

    get = command("get", "write a key's data to a file or to the standard output")
    get.add_argument("key")
    get.add_argument("-o", "--output", default=None, metavar="FILE",
                     help="the file to write ('-': standard output, the default); it is "
                          "replaced only once the whole value has been read")

    metadata_help = "metadata items: name=text (a string) or name:=json"
    put = command("put", "store a file (or '-', the standard input) under a key")
    put.add_argument("-r", "--recursive", action="store_true",
                     help="store every file under the directory DIR as PREFIX/relative/path")
    put.add_argument("key", metavar="KEY|DIR")
    put.add_argument("source", metavar="FILE|-|PREFIX")
    put.add_argument("--meta", "-m", nargs="+", action="extend", default=[], type=parse_assignment,
                     metavar="ITEM", help=metadata_help + " (replaces the key's metadata)")
    put.add_argument("--merge", action="store_true",
                     help="keep the existing metadata names not given with --meta")

    meta = command("meta", "print a key's metadata as JSON, or change it")
    meta.add_argument("key")
    meta.add_argument("-l", "--long", action="store_true",
                      help="also print the key, size, creation and modification times")
    meta.add_argument("--set", nargs="+", action="extend", default=[], type=parse_assignment,
                      metavar="ITEM", help=metadata_help)
    meta.add_argument("--unset", nargs="+", action="extend", default=[], type=_name,
                      metavar="NAME", help="metadata names to remove")
    meta.add_argument("--replace", action="store_true",
                      help="replace all the metadata with the --set items")

    query = command("query", "list the keys whose metadata have all the given values")
    query.add_argument("conditions", nargs="+", type=parse_assignment, metavar="ITEM",
                       help="name=text or name:=json")

    rm = command("rm", "delete keys")
    rm.add_argument("keys", nargs="+", metavar="KEY")

    cp = command("cp", "copy keys (data and metadata) from one store to another")
    cp.add_argument("source", metavar="SRC")
    cp.add_argument("destination", metavar="DST")
    cp.add_argument("pattern", nargs="?", default="*", metavar="GLOB", help=glob_help)

    _cli_network.add_commands(commands, parents=[common], port=_port)
    return parser


# ---------------------------------------------------------------------------
# Opening stores
# ---------------------------------------------------------------------------


def store_url(text: str) -> str:
    """Turn what a user gave as ``--store`` into a store URL.

    Parameters
    ----------
    text : str
        A URL (``scheme:...``) or a path.  An existing directory, or a path
        ending with a separator, becomes a ``file://`` URL (a file system
        store); any other path a ``sqlite://`` URL (an SQLite database).

    Returns
    -------
    str
        The URL.
    """
    if _URL_PATTERN.match(text) and not _WINDOWS_DRIVE.match(text):
        return text
    path = os.path.abspath(os.path.expanduser(text))
    location = urllib.request.pathname2url(path)
    if os.path.isdir(path) or text.endswith(("/", os.sep)):
        return "file://" + location
    return "sqlite://" + location


def _is_store_directory(path: str, magic: str) -> bool:
    return os.path.isfile(os.path.join(path, magic))


def _check_local(url: str, create: bool) -> None:
    """Refuse, with an actionable message, to open or create the wrong thing."""
    parsed = urllib.parse.urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme == "sqlite":
        location = sqlite_location(parsed)
        if location == ":memory:":
            return
        if os.path.isdir(location):
            raise CommandError("{} is a directory, not a database file".format(location))
        if os.path.exists(location):
            return
        if not create:
            raise CommandError(
                "no store at {} (nothing has been put there yet; check the path)".format(location))
        parent = os.path.dirname(os.path.abspath(location))
        if not os.path.isdir(parent):
            raise CommandError("cannot create {}: the directory {} does not exist".format(location, parent))
    elif scheme == "file":
        from encore.storage import _local_path

        path = _local_path(parsed)
        magic = dict(urllib.parse.parse_qsl(parsed.query)).get("magic_fname", ".FSStore")
        if _is_store_directory(path, magic):
            return
        if not os.path.exists(path):
            if not create:
                raise CommandError(
                    "no store at {} (nothing has been put there yet; check the path)".format(path))
            return
        if not os.path.isdir(path):
            raise CommandError("{} is a file, not a store directory".format(path))
        if not create:
            raise CommandError(
                "{} is a directory but not an encore store (it has no {} file)".format(path, magic))
        if os.listdir(path):
            raise CommandError(
                "{} is a directory that holds other files and is not an encore store (it has no "
                "{} file); give a new or empty directory, or a .db file".format(path, magic))


def _open(text: str, events: EventManager, create: bool) -> Any:
    """Open the store named by a URL or path; only writers may create one."""
    url = store_url(text)
    _check_local(url, create)
    options: Dict[str, Any] = {"event_manager": events}
    if urllib.parse.urlparse(url).scheme.lower() == "file":
        options["create"] = create
    try:
        return open_store(url, **options)
    except sqlite3.Error as error:
        raise CommandError(_sqlite_message(error, url)) from None


def _require_writable(store: Any, text: str) -> None:
    if not callable(getattr(store, "set", None)) or not callable(getattr(store, "delete", None)):
        raise CommandError(
            "{} is a read-only store ({}): it cannot be written".format(text, type(store).__name__))


# ---------------------------------------------------------------------------
# Moving data with progress
# ---------------------------------------------------------------------------


class _CountingReader(object):
    """A readable stream that reports how far it has been read.

    A seekable stream stays seekable, so that a store can learn the size of
    what it is given (and take its faster path for values of known size);
    seeking does not count as reading.
    """

    def __init__(self, stream: Any, report: Callable[[int], None], start: int = 0) -> None:
        self._stream = stream
        self._report = report
        self._start = start
        try:
            self._seekable = bool(stream.seekable())
            self._origin = stream.tell() if self._seekable else 0
        except (AttributeError, OSError, ValueError):
            self._seekable, self._origin = False, 0
        self._read = 0
        #: The furthest point read, in bytes from where the stream started.
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        if chunk:
            if self._seekable:
                done = self._stream.tell() - self._origin
            else:
                self._read += len(chunk)
                done = self._read
            self.count = max(self.count, done)
            self._report(self._start + done)
        return chunk

    def seekable(self) -> bool:
        return self._seekable

    def tell(self) -> int:
        if not self._seekable:
            raise io.UnsupportedOperation("not seekable")
        return self._stream.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if not self._seekable:
            raise io.UnsupportedOperation("not seekable")
        return self._stream.seek(offset, whence)

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class _Context(object):
    """What every command gets: streams, events, the store option."""

    def __init__(self, arguments: argparse.Namespace, out: Any, err: TextIO, stdin: Any) -> None:
        self.arguments = arguments
        self.out = out
        self.err = err
        self.stdin = stdin
        #: Stores emit their events here; nobody listens, so they spend
        #: nothing on progress events: the command draws its own.
        self.store_events = EventManager()
        #: The command's own progress events, drawn by the display.
        self.ui_events = EventManager()
        self.quiet = getattr(arguments, "quiet", False)
        self.display = None if self.quiet else ProgressDisplay(self.ui_events, stream=err)

    @property
    def store_text(self) -> str:
        return getattr(self.arguments, "store", None) or os.environ.get("ENCORE_STORE") or DEFAULT_STORE

    def open(self, create: bool = False, text: Optional[str] = None) -> Any:
        return _open(self.store_text if text is None else text, self.store_events, create)

    @contextlib.contextmanager
    def progress(self, message: str, steps: Optional[int], units: str = "bytes") -> Iterator[ProgressManager]:
        """Show the progress of one operation; a failure draws no line of its own.

        The error is reported once, as the command's ``encore:`` line.
        """
        steps = steps if steps is not None and steps > 0 else -1
        manager = ProgressManager(self.ui_events, message=message, steps=steps, units=units)
        manager.start()
        try:
            yield manager
        except BaseException:
            if self.display is not None:
                self.display.forget(manager.operation_id)
            raise
        manager.end()

    def close(self) -> None:
        if self.display is not None:
            self.display.disconnect()


def _copy_out(value: Any, key: str, write: Callable[[bytes], Any], context: _Context) -> int:
    """Copy a value's data into ``write``; raise if the transfer was cut."""
    size = value.size
    stream = value.data
    total = 0
    try:
        with context.progress("get {}".format(key), size) as progress:
            while True:
                chunk = stream.read(BUFFER_SIZE)
                if not chunk:
                    break
                write(chunk)
                total += len(chunk)
                progress.step(step=total)
            if size is not None and total != size:
                raise CommandError("the transfer of {} was cut short: got {} of {} bytes".format(
                    key, total, size))
    finally:
        stream.close()
    return total


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------


def _iso(timestamp: Optional[float]) -> Optional[str]:
    if timestamp is None:
        return None
    moment = datetime.datetime.fromtimestamp(float(timestamp), tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _print(context: _Context, text: str) -> None:
    context.out.write((text + "\n").encode("utf-8"))


def _sorted(value: Any) -> Any:
    """JSON data with the names of every object in sorted order."""
    if isinstance(value, dict):
        return {name: _sorted(value[name]) for name in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def _printable(metadata: Dict[str, Any]) -> Dict[str, Any]:
    """Metadata as JSON data, names sorted, values beyond JSON in the tagged
    form of :mod:`encore.storage._metadata_codec` (which ``name:=json`` reads)."""
    return _sorted(to_json(metadata))


def _dump(metadata: Any) -> str:
    return json.dumps(_printable(metadata), indent=2, ensure_ascii=False)


def _command_ls(context: _Context) -> int:
    arguments = context.arguments
    store = context.open()
    try:
        keys = store.query_keys() if arguments.pattern is None else store.glob(arguments.pattern)
        for key in sorted(keys):
            if not arguments.long:
                _print(context, key)
                continue
            value = store.get(key)
            size = "-" if value.size is None else str(value.size)
            _print(context, "{:>12}  {:<20}  {}".format(size, _iso(value.modified) or "-", key))
    finally:
        store.disconnect()
    return 0


def _command_get(context: _Context) -> int:
    arguments = context.arguments
    store = context.open()
    try:
        value = store.get(arguments.key)
        output = arguments.output
        if output is None or output == "-":
            _copy_out(value, arguments.key, context.out.write, context)
            return 0
        if os.path.isdir(output):
            output = os.path.join(output, posixpath.basename(arguments.key) or "data")
        _write_file_atomically(output, lambda write: _copy_out(value, arguments.key, write, context))
    finally:
        store.disconnect()
    return 0


def _write_file_atomically(path: str, fill: Callable[[Callable[[bytes], Any]], Any]) -> None:
    """Write ``path`` through :func:`~encore.storage._atomic_file.replacing`.

    ``path`` is replaced only once ``fill`` has returned: an error or an
    interruption leaves it as it was.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CommandError("cannot write {}: the directory {} does not exist".format(path, directory))
    with replacing(path) as stream:
        fill(stream.write)


def _open_source(context: _Context, source: str) -> Tuple[Any, Optional[int], str]:
    """The stream to read for ``put``, its size if known, and its name."""
    if source == "-":
        return context.stdin, None, "standard input"
    if os.path.isdir(source):
        raise CommandError("{} is a directory: use put -r DIR PREFIX to store a tree".format(source))
    stream = open(source, "rb")
    status = os.fstat(stream.fileno())
    size = status.st_size if stat.S_ISREG(status.st_mode) else None
    return stream, size, source


def _command_put(context: _Context) -> int:
    arguments = context.arguments
    metadata = dict(arguments.meta)
    if arguments.recursive:
        return _put_tree(context, arguments.key, arguments.source, metadata)
    key, source = arguments.key, arguments.source
    stream, size, name = _open_source(context, source)  # before creating anything
    try:
        store = context.open(create=True)
        try:
            _require_writable(store, context.store_text)
            with context.progress("put {}".format(key), size) as progress:
                reader = _CountingReader(stream, lambda done: progress.step(step=done))
                with store.transaction("encore put {}".format(key)):
                    new_metadata = metadata
                    if arguments.merge and store.exists(key):
                        new_metadata = dict(store.get_metadata(key), **metadata)
                    store.set(key, (reader, new_metadata), BUFFER_SIZE)
                    if size is not None and reader.count != size:
                        # Inside the transaction: what was stored is rolled back.
                        raise CommandError("{} changed while it was read ({} bytes expected, {} read)".format(
                            name, size, reader.count))
        finally:
            store.disconnect()
    finally:
        if stream is not context.stdin:
            stream.close()
    return 0


def _tree_files(directory: str) -> List[Tuple[str, str]]:
    """The files under ``directory`` as (path, relative POSIX path), sorted."""
    found = []
    for root, directories, files in os.walk(directory):
        directories.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            if os.path.isfile(path):
                relative = os.path.relpath(path, directory).replace(os.sep, "/")
                found.append((path, relative))
    return found


def _put_tree(context: _Context, directory: str, prefix: str, metadata: Dict[str, Any]) -> int:
    if not os.path.isdir(directory):
        raise CommandError("{} is not a directory (put -r takes DIR PREFIX)".format(directory))
    files = _tree_files(directory)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    sizes = [os.path.getsize(path) for path, _ in files]
    total = sum(sizes)
    store = context.open(create=True)
    try:
        _require_writable(store, context.store_text)
        done = 0
        message = "put {} files into {}".format(len(files), prefix or "the store")
        with context.progress(message, total) as progress:
            with store.transaction("encore put -r {} {}".format(directory, prefix)):
                for index, ((path, relative), size) in enumerate(zip(files, sizes)):
                    key = prefix + relative
                    label = "{}/{} files".format(index + 1, len(files))
                    with open(path, "rb") as stream:
                        # mypy cannot type a lambda binding label by a default.
                        reader = _CountingReader(
                            stream,
                            lambda count, label=label: progress.step(  # type: ignore[misc]
                                message=label, step=count),
                            done)
                        new_metadata = metadata
                        if context.arguments.merge and store.exists(key):
                            new_metadata = dict(store.get_metadata(key), **metadata)
                        store.set(key, (reader, new_metadata), BUFFER_SIZE)
                    done += reader.count
                    progress.step(message=label, step=done)
    finally:
        store.disconnect()
    return 0


def _command_meta(context: _Context) -> int:
    arguments = context.arguments
    changing = bool(arguments.set or arguments.unset or arguments.replace)
    store = context.open()
    try:
        if changing:
            _require_writable(store, context.store_text)
            with store.transaction("encore meta {}".format(arguments.key)):
                if arguments.replace:
                    metadata: Dict[str, Any] = {}
                else:
                    metadata = store.get_metadata(arguments.key)
                metadata.update(dict(arguments.set))
                for name in arguments.unset:
                    metadata.pop(name, None)
                store.set_metadata(arguments.key, metadata)
        if arguments.long:
            value = store.get(arguments.key)
            document = {
                "key": arguments.key,
                "size": value.size,
                "created": _iso(value.created),
                "modified": _iso(value.modified),
                "metadata": _printable(value.metadata),
            }
            _print(context, json.dumps(document, indent=2, ensure_ascii=False))
        else:
            _print(context, _dump(store.get_metadata(arguments.key)))
    finally:
        store.disconnect()
    return 0


def _command_query(context: _Context) -> int:
    store = context.open()
    try:
        for key in sorted(store.query_keys(**dict(context.arguments.conditions))):
            _print(context, key)
    finally:
        store.disconnect()
    return 0


def _command_rm(context: _Context) -> int:
    store = context.open()
    try:
        _require_writable(store, context.store_text)
        with store.transaction("encore rm"):
            for key in context.arguments.keys:
                store.delete(key)
    finally:
        store.disconnect()
    return 0


def _command_cp(context: _Context) -> int:
    arguments = context.arguments
    source = context.open(text=arguments.source)
    try:
        keys = sorted(source.glob(arguments.pattern))
        destination = context.open(create=True, text=arguments.destination)
        try:
            _require_writable(destination, arguments.destination)
            copied = 0
            message = "cp {} key{}".format(len(keys), "" if len(keys) == 1 else "s")
            with context.progress(message, len(keys), units="keys") as progress:
                with destination.transaction("encore cp {} {}".format(arguments.source, arguments.destination)):
                    for index, key in enumerate(keys):
                        value = source.get(key)

                        def report(count: int, index: int = index) -> None:
                            progress.step(message=format_size(count) + " copied", step=index)

                        reader = _CountingReader(value.data, report, copied)
                        try:
                            destination.set(key, (reader, value.metadata), BUFFER_SIZE)
                        finally:
                            reader.close()
                        if value.size is not None and reader.count != value.size:
                            raise CommandError("the transfer of {} was cut short: got {} of {} bytes".format(
                                key, reader.count, value.size))
                        copied += reader.count
                        progress.step(message=format_size(copied) + " copied", step=index + 1)
        finally:
            destination.disconnect()
    finally:
        source.disconnect()
    if context.quiet:
        return 0
    context.err.write("copied {} key{} ({})\n".format(len(keys), "" if len(keys) == 1 else "s",
                                                     format_size(copied)))
    return 0


# -- serve, users, publish: the network commands of encore._cli_network ----


def _command_network(context: _Context) -> int:
    # Neither serving nor publishing creates a store: a mistyped path is refused.
    status = _cli_network.run(context.arguments, lambda create: context.open(create=False),
                              context.out, context.err)
    assert status is not None
    return status


_COMMANDS: Dict[str, Callable[[_Context], int]] = {
    "ls": _command_ls,
    "get": _command_get,
    "put": _command_put,
    "meta": _command_meta,
    "query": _command_query,
    "rm": _command_rm,
    "cp": _command_cp,
    "serve": _command_network,
    "users": _command_network,
    "publish": _command_network,
}


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def _sqlite_message(error: BaseException, where: str) -> str:
    text = str(error)
    lowered = text.lower()
    if "not a database" in lowered or "malformed" in lowered:
        return "{} is not an encore store (not an SQLite database)".format(where)
    if "readonly" in lowered or "read-only" in lowered:
        return ("cannot write {}: the database (or its directory) is read-only; check its "
                "permissions".format(where))
    if "unable to open" in lowered:
        return "cannot open {}: check the path and its permissions".format(where)
    if "locked" in lowered or "busy" in lowered:
        return "{} is busy (another program is writing it); try again".format(where)
    return "database error in {}: {}".format(where, text)


_HTTP_MEANINGS = {
    400: "the server refused the request as malformed",
    401: "authentication is required (give user:password in the URL)",
    403: "this user may not do that",
    404: "not found (check the URL)",
    405: "the server does not allow this (is it serving read-only?)",
    409: "conflict with the store's current state",
    413: "the value is too large for the server",
    429: "too many requests; try again later",
    500: "the server failed",
    502: "bad gateway",
    503: "the server is unavailable; try again later",
    504: "the gateway timed out",
}


def _http_message(error: BaseException) -> Optional[str]:
    """A one-line message for an error of the requests library, if it is one."""
    if not type(error).__module__.startswith("requests"):
        return None
    response = getattr(error, "response", None)
    request = getattr(error, "request", None)
    url = getattr(response, "url", None) or getattr(request, "url", None) or "the server"
    status = getattr(response, "status_code", None)
    if status is not None:
        reason = getattr(response, "reason", "") or ""
        meaning = _HTTP_MEANINGS.get(status, "server error" if status >= 500 else "request refused")
        return "HTTP {} {} from {}: {}".format(status, reason, url, meaning).replace("  ", " ")
    name = type(error).__name__
    if "Timeout" in name:
        return "no answer in time from {}".format(url)
    if "ConnectionError" in name:
        return "cannot connect to {} (is the server running? is the URL right?)".format(url)
    return "HTTP request to {} failed: {}".format(url, error)


def _error_message(error: BaseException) -> str:
    """Say what went wrong in one line, and what to do about it."""
    if isinstance(error, KeyError):
        return "no such key: {}".format(error.args[0] if error.args else "")
    if isinstance(error, ModuleNotFoundError) or (isinstance(error, ImportError) and error.__cause__):
        missing = getattr(error, "name", None) or getattr(error.__cause__, "name", None) or ""
        extra = _EXTRAS.get(missing.split(".")[0])
        if extra:
            return ("this store needs the optional package {!r}: install encore with the {!r} extra "
                    "(pip install \".[{}]\" in the encore checkout)".format(missing, extra, extra))
        return "a package is missing: {}".format(error)
    http = _http_message(error)
    if http is not None:
        return http
    status = getattr(error, "status", None)
    if isinstance(status, int) and type(error).__name__ == "HTTPStatusError":
        meaning = _HTTP_MEANINGS.get(status, "server error" if status >= 500 else "request refused")
        reason = getattr(error, "reason", "") or ""
        return "HTTP {} {} from {}: {}".format(status, reason, getattr(error, "url", "the server"),
                                               meaning).replace("  ", " ")
    if isinstance(error, urllib.error.HTTPError):
        meaning = _HTTP_MEANINGS.get(error.code, "request refused")
        return "HTTP {} {} from {}: {}".format(error.code, error.reason, error.geturl(), meaning)
    if isinstance(error, urllib.error.URLError):
        return "cannot reach {}: {}".format(getattr(error, "filename", None) or "the server",
                                            getattr(error.reason, "strerror", None) or error.reason)
    if isinstance(error, sqlite3.Error):
        return _sqlite_message(error, "the database")
    if isinstance(error, PermissionError):
        return "permission denied: {}".format(error.filename or error)
    if isinstance(error, FileNotFoundError):
        return "no such file or directory: {}".format(error.filename or error)
    if isinstance(error, IsADirectoryError):
        return "{} is a directory".format(error.filename)
    if isinstance(error, OSError) and error.strerror:
        where = ": {}".format(error.filename) if error.filename else ""
        return "{}{}".format(error.strerror, where)
    text = str(error) or type(error).__name__
    if isinstance(error, (CommandError, ValueError, TypeError, OSError)) or \
            type(error).__name__ in ("StoreError", "AuthorizationError"):
        if type(error).__name__ == "AuthorizationError":
            return "not allowed: {}".format(text)
        return text
    return "{}: {} (set ENCORE_DEBUG=1 to see where)".format(type(error).__name__, text)


def main(argv: Optional[Sequence[str]] = None, stdout: Any = None, stderr: Optional[TextIO] = None,
         stdin: Any = None) -> int:
    """Run the ``encore`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default ``sys.argv[1:]``).
    stdout : binary file-like, optional
        Where data and listings go (default ``sys.stdout.buffer``).
    stderr : text file-like, optional
        Where progress and errors go (default ``sys.stderr``).
    stdin : binary file-like, optional
        What ``put KEY -`` reads (default ``sys.stdin.buffer``).

    Returns
    -------
    int
        The exit status: 0 on success, 1 when the operation failed, 2 for
        bad usage, 130 when interrupted, 141 when the output was closed
        early.
    """
    out = stdout if stdout is not None else sys.stdout.buffer
    err = stderr if stderr is not None else sys.stderr
    source = stdin if stdin is not None else getattr(sys.stdin, "buffer", sys.stdin)
    try:
        arguments = _build_parser().parse_args(argv)
    except UsageError as error:
        err.write("encore: {} (see encore --help)\n".format(error))
        return 2
    except SystemExit as exit:  # --help, --version
        return int(exit.code or 0)
    context = _Context(arguments, out, err, source)
    try:
        try:
            return _COMMANDS[arguments.command](context)
        finally:
            context.close()
            out.flush()
    except BrokenPipeError:
        _silence_stdout(stdout is None)
        return 141
    except KeyboardInterrupt:
        # On a terminal the ^C the terminal echoed is on the current line.
        err.write("{}encore: interrupted\n".format("\n" if _is_terminal(err) else ""))
        return 130
    except Exception as error:
        if os.environ.get("ENCORE_DEBUG"):
            raise
        err.write("encore: {}\n".format(_error_message(error)))
        return 1


def _silence_stdout(is_real_stdout: bool) -> None:
    # The reader went away: point the standard output at /dev/null so that
    # the interpreter's final flush does not complain about it.
    if not is_real_stdout:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


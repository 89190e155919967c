"""The ``encore`` command: inspect stores and move data between them.

::

    encore [--store URL] ls [GLOB]
    encore [--store URL] get KEY [-o FILE]
    encore [--store URL] put KEY FILE [--meta NAME=VALUE ...]
    encore [--store URL] meta KEY
    encore [--store URL] query NAME=VALUE ...
    encore [--store URL] rm KEY
    encore cp SRC_URL DST_URL [GLOB]
    encore [--store URL] serve [--host HOST] [--port PORT] [--users FILE] [--read-only] ...
    encore [--store URL] publish DIRECTORY [GLOB]
    encore users add|token|remove|list FILE [NAME]

Stores are addressed by URL (see :func:`encore.storage.open_store`); the
default is ``sqlite:///./encore.db``, or the ``ENCORE_STORE`` environment
variable.  Metadata values given as ``NAME=VALUE`` are read as JSON when they
parse (``n=3``, ``ok=true``, ``tags=["a","b"]``) and as text otherwise.
Progress bars, driven by the stores' progress events, go to the standard
error stream.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import urllib.parse
from typing import Any, Dict, Optional, Sequence, TextIO

from encore import __version__, _cli_network
from encore.events.event_manager import EventManager
from encore.storage import open_store, sqlite_location
from encore.terminal.progress_display import ProgressDisplay

logger = logging.getLogger(__name__)

#: The store used when neither ``--store`` nor ``ENCORE_STORE`` is given.
DEFAULT_STORE = "sqlite:///./encore.db"


def parse_assignment(text: str) -> tuple:
    """Split ``NAME=VALUE`` into a name and a value.

    Parameters
    ----------
    text : str
        The assignment; the value is read as JSON when it parses, as text
        otherwise.

    Returns
    -------
    tuple of (str, object)
        The name and the value.

    Raises
    ------
    argparse.ArgumentTypeError
        If there is no ``=`` or the name is empty.
    """
    name, separator, raw = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError("expected NAME=VALUE, got {!r}".format(text))
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return name, value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="encore",
        description="Inspect key-value stores and move data between them.",
    )
    parser.add_argument("--version", action="version", version="encore " + __version__)
    parser.add_argument(
        "--store", default=None,
        help="store URL (default: $ENCORE_STORE or {})".format(DEFAULT_STORE))
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    ls = commands.add_parser("ls", help="list keys, optionally matching a glob pattern")
    ls.add_argument("pattern", nargs="?", default=None, metavar="GLOB")

    get = commands.add_parser("get", help="write a key's data to a file or stdout")
    get.add_argument("key")
    get.add_argument("-o", "--output", default=None, metavar="FILE")

    put = commands.add_parser("put", help="store a file's content under a key")
    put.add_argument("key")
    put.add_argument("file")
    put.add_argument("--meta", action="append", default=[], type=parse_assignment,
                     metavar="NAME=VALUE", help="metadata to set (repeatable)")

    meta = commands.add_parser("meta", help="print a key's metadata as JSON")
    meta.add_argument("key")

    query = commands.add_parser("query", help="list keys whose metadata match")
    query.add_argument("conditions", nargs="+", type=parse_assignment, metavar="NAME=VALUE")

    rm = commands.add_parser("rm", help="delete a key")
    rm.add_argument("key")

    _cli_network.add_commands(commands)  # serve, users, publish

    cp = commands.add_parser("cp", help="copy keys from one store to another")
    cp.add_argument("source", metavar="SRC_URL")
    cp.add_argument("destination", metavar="DST_URL")
    cp.add_argument("pattern", nargs="?", default="*", metavar="GLOB")
    return parser


def _open(url: str, manager: EventManager, create: bool) -> Any:
    """Open a store for a command; only commands that write may create one."""
    if not create and url.lower().startswith("sqlite:"):
        location = sqlite_location(urllib.parse.urlparse(url))
        if location != ":memory:" and not os.path.exists(location):
            raise FileNotFoundError("no store at {} (nothing has been put there yet)".format(url))
    if url.lower().startswith("file:"):
        return open_store(url, event_manager=manager, create=create)
    return open_store(url, event_manager=manager)


def _run(arguments: argparse.Namespace, manager: EventManager, out: Any, err: TextIO) -> int:
    command = arguments.command
    if command == "cp":
        source = _open(arguments.source, manager, create=False)
        destination = _open(arguments.destination, manager, create=True)
        try:
            count = 0
            for key in sorted(source.glob(arguments.pattern)):
                value = source.get(key)
                destination.set(key, value)
                count += 1
            err.write("copied {} key{}\n".format(count, "" if count == 1 else "s"))
        finally:
            source.disconnect()
            destination.disconnect()
        return 0

    url = arguments.store or os.environ.get("ENCORE_STORE") or DEFAULT_STORE
    status = _cli_network.run(arguments, lambda create: _open(url, manager, create), out, err)
    if status is not None:
        return status
    store = _open(url, manager, create=command == "put")
    try:
        if command == "ls":
            keys = store.query_keys() if arguments.pattern is None else store.glob(arguments.pattern)
            for key in sorted(keys):
                out.write((key + "\n").encode("utf-8"))
        elif command == "get":
            if arguments.output is None:
                stream = store.get_data(arguments.key)
                try:
                    while True:
                        chunk = stream.read(1048576)
                        if not chunk:
                            break
                        out.write(chunk)
                finally:
                    stream.close()
            else:
                store.to_file(arguments.key, arguments.output)
        elif command == "put":
            metadata: Dict[str, Any] = dict(arguments.meta)
            with store.transaction("encore put {}".format(arguments.key)):
                store.from_file(arguments.key, arguments.file)
                if metadata:
                    store.update_metadata(arguments.key, metadata)
        elif command == "meta":
            metadata = store.get_metadata(arguments.key)
            out.write((json.dumps(metadata, indent=2, sort_keys=True) + "\n").encode("utf-8"))
        elif command == "query":
            for key in sorted(store.query_keys(**dict(arguments.conditions))):
                out.write((key + "\n").encode("utf-8"))
        elif command == "rm":
            store.delete(arguments.key)
    finally:
        store.disconnect()
    return 0


def main(argv: Optional[Sequence[str]] = None, stdout: Any = None, stderr: Optional[TextIO] = None) -> int:
    """Run the ``encore`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default ``sys.argv[1:]``).
    stdout : binary file-like, optional
        Where data and listings go (default ``sys.stdout.buffer``).
    stderr : text file-like, optional
        Where progress and errors go (default ``sys.stderr``).

    Returns
    -------
    int
        The exit status: 0 on success, 1 for a missing key or a store
        error, 2 for bad usage.
    """
    out = stdout if stdout is not None else sys.stdout.buffer
    err = stderr if stderr is not None else sys.stderr
    parser = _build_parser()
    try:
        arguments = parser.parse_args(argv)
    except SystemExit as exit:
        return int(exit.code or 0)
    manager = EventManager()
    display = None if arguments.quiet else ProgressDisplay(manager, stream=err)
    try:
        return _run(arguments, manager, out, err)
    except KeyError as error:
        err.write("encore: no such key: {}\n".format(error.args[0] if error.args else error))
        return 1
    except (OSError, ValueError, TypeError, RuntimeError) as error:
        err.write("encore: {}\n".format(error))
        return 1
    finally:
        if display is not None:
            display.disconnect()
        out.flush()

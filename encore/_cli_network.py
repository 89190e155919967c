"""The network commands of ``encore``: ``serve``, ``users`` and ``publish``.

Kept apart from :mod:`encore.cli` (which calls :func:`add_commands` when
building its parser and :func:`run` before its own commands)::

    encore [--store URL] serve [--host H] [--port P] [--users FILE] [--read-only]
                               [--expose-without-auth] [--allowed-host NAME ...]
                               [--allowed-origin URL ...] [--workers N] [--idle-timeout S]
    encore users add FILE NAME [--password-stdin]
    encore users token FILE NAME
    encore users remove FILE NAME
    encore users list FILE
    encore [--store URL] publish DIRECTORY [GLOB]
"""
from __future__ import annotations

import argparse
import getpass
import sys
import threading
from typing import Any, Callable, Optional, Sequence, TextIO

__all__ = ["add_commands", "run", "COMMANDS"]

#: The sub-commands handled here.
COMMANDS = ("serve", "users", "publish")


def add_commands(commands: Any, parents: Sequence[argparse.ArgumentParser] = (),
                 port: Callable[[str], int] = int) -> None:
    """Add the network sub-commands to an argparse sub-parsers object.

    Parameters
    ----------
    commands : argparse._SubParsersAction
        What ``parser.add_subparsers()`` returned.
    parents : sequence of argparse.ArgumentParser, optional
        Parsers of the options every command takes (``--store``, ...).
    port : callable, optional
        Converts and checks the ``--port`` argument.
    """
    serve = commands.add_parser(
        "serve", parents=list(parents), help="serve the store over HTTP until interrupted",
        description="Serve the store over HTTP (the dynamic URL protocol, and pages for a "
                    "browser) until interrupted.  Beyond 127.0.0.1 give --users.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=port, default=8000, help="port (default 8000; 0 picks one)")
    serve.add_argument("--users", metavar="FILE",
                       help="require HTTP Basic or Bearer authentication with the users of FILE "
                            "(written by 'encore users add')")
    serve.add_argument("--read-only", action="store_true", help="answer every write with 405")
    serve.add_argument("--expose-without-auth", action="store_true",
                       help="allow listening beyond loopback WITHOUT authentication: anyone who "
                            "can reach the port can read and write the store")
    serve.add_argument("--allowed-host", action="append", default=None, metavar="NAME",
                       help="a host name clients use to reach the server (Host header); repeat "
                            "for several (default: localhost, the --host name and the machine's "
                            "name; IP addresses are always accepted)")
    serve.add_argument("--allowed-origin", action="append", default=[], metavar="URL",
                       help="a web origin allowed to write, such as https://app.example")
    serve.add_argument("--workers", type=int, default=16, help="connections served at once (default 16)")
    serve.add_argument("--idle-timeout", type=float, default=15.0, metavar="SECONDS",
                       help="close connections silent for this long (default 15)")

    users = commands.add_parser("users", help="manage the users file of 'encore serve --users'")
    actions = users.add_subparsers(dest="users_command", metavar="ACTION")
    actions.required = True
    add = actions.add_parser("add", help="add a user or change their password (hashed, never stored)")
    add.add_argument("file", metavar="FILE")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input")
    add.add_argument("--iterations", type=int, default=None, help=argparse.SUPPRESS)
    token = actions.add_parser("token", help="give a user a new bearer token (printed once)")
    token.add_argument("file", metavar="FILE")
    token.add_argument("name", metavar="NAME")
    remove = actions.add_parser("remove", help="remove a user")
    remove.add_argument("file", metavar="FILE")
    remove.add_argument("name", metavar="NAME")
    listing = actions.add_parser("list", help="list the users")
    listing.add_argument("file", metavar="FILE")

    publish = commands.add_parser(
        "publish", parents=list(parents), help="write the store as static files for StaticURLStore",
        description="Write DIRECTORY/index.json and DIRECTORY/data/KEY for the keys of the store "
                    "(matching GLOB); any static web server can then serve them.  Re-publishing "
                    "updates the directory atomically.")
    publish.add_argument("directory", metavar="DIRECTORY")
    publish.add_argument("pattern", nargs="?", default=None, metavar="GLOB")


def _read_password(arguments: argparse.Namespace, stdin: TextIO, err: TextIO) -> str:
    if arguments.password_stdin:
        line = stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if password.endswith("\r"):
            password = password[:-1]
    elif stdin.isatty():
        password = getpass.getpass("Password for {}: ".format(arguments.name))
        if getpass.getpass("Again: ") != password:
            raise ValueError("the passwords differ")
    else:
        raise ValueError("not on a terminal: give the password on standard input with --password-stdin")
    if not password:
        raise ValueError("the password is empty")
    return password


def _users(arguments: argparse.Namespace, out: Any, err: TextIO, stdin: TextIO) -> int:
    from encore.storage._server_auth import PasswordFile

    users = PasswordFile(arguments.file)
    action = arguments.users_command
    if action == "list":
        for name in users.names():
            out.write((name + "\n").encode("utf-8"))
        return 0
    if action == "remove":
        users.remove(arguments.name)
        users.save()
        err.write("encore: removed {}\n".format(arguments.name))
        return 0
    if action == "token":
        token = users.add_token(arguments.name)
        users.save()
        out.write((token + "\n").encode("utf-8"))
        err.write("encore: new token for {} (shown once; send it as 'Authorization: Bearer ...')\n"
                  .format(arguments.name))
        return 0
    password = _read_password(arguments, stdin, err)
    if arguments.iterations is None:
        users.add_user(arguments.name, password)
    else:
        users.add_user(arguments.name, password, iterations=arguments.iterations)
    users.save()
    err.write("encore: saved {} in {}\n".format(arguments.name, arguments.file))
    return 0


def _serve(arguments: argparse.Namespace, store: Any, out: Any, err: TextIO,
           ready: Optional[Callable[[Any], None]] = None) -> int:
    from encore.storage.server import serve

    server = serve(store, host=arguments.host, port=arguments.port, users=arguments.users,
                   read_only=arguments.read_only, expose_without_auth=arguments.expose_without_auth,
                   allowed_hosts=arguments.allowed_host, allowed_origins=arguments.allowed_origin,
                   workers=arguments.workers, idle_timeout=arguments.idle_timeout)
    try:
        out.write((server.url + "\n").encode("utf-8"))
        out.flush()
        notes = []
        if arguments.users:
            notes.append("users of {}".format(arguments.users))
        if arguments.read_only:
            notes.append("read-only")
        err.write("encore: serving on {}{} (Ctrl-C to stop)\n".format(
            server.url, " ({})".format(", ".join(notes)) if notes else ""))
        err.flush()
        if ready is not None:
            ready(server)
        else:
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return 0


def run(arguments: argparse.Namespace, open_store: Callable[[bool], Any], out: Any, err: TextIO,
        stdin: Optional[TextIO] = None, ready: Optional[Callable[[Any], None]] = None) -> Optional[int]:
    """Run a network sub-command; return ``None`` for the others.

    Parameters
    ----------
    arguments : argparse.Namespace
        The parsed arguments (``arguments.command`` names the sub-command).
    open_store : callable
        ``open_store(create)`` opens the store of ``--store``.
    out : binary file-like
        Where URLs, listings and tokens go.
    err : text file-like
        Where messages go.
    stdin : text file-like, optional
        Where passwords are read (default :data:`sys.stdin`).
    ready : callable, optional
        For ``serve``: called with the running server instead of waiting
        for Ctrl-C (the server stops when it returns).

    Returns
    -------
    int or None
        The exit status, or ``None`` if the command is not one of
        :data:`COMMANDS`.
    """
    command = getattr(arguments, "command", None)
    if command not in COMMANDS:
        return None
    if command == "users":
        return _users(arguments, out, err, sys.stdin if stdin is None else stdin)
    store = open_store(command == "serve")
    try:
        if command == "serve":
            return _serve(arguments, store, out, err, ready)
        from encore.storage.publish import publish

        count = publish(store, arguments.directory, arguments.pattern)
        err.write("encore: published {} key{} to {}\n".format(count, "" if count == 1 else "s",
                                                             arguments.directory))
        return 0
    finally:
        store.disconnect()

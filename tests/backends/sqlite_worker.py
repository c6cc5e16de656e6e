"""A separate process working on an SQLite event store file, for the multi-process tests.

``python -m tests.backends.sqlite_worker append PATH WORKER APPENDS STREAMS SYNCHRONOUS``
prints ``ready``, waits for a line on stdin, makes APPENDS appends of one event each to
random streams with the expected version it just read, and prints a JSON report.

``python -m tests.backends.sqlite_worker dump PATH`` prints every stored event as JSON.
"""

import json
import random
import sys

from eventkit import ConcurrencyError, SQLiteEventStore
from eventkit.testing import contract_registry
from eventkit.testing._events import Noted


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def append(path, worker, appends, streams, synchronous):
    store = SQLiteEventStore(path, registry=contract_registry, synchronous=synchronous)
    rng = random.Random(worker)
    won, lost = [], 0
    say("ready")
    sys.stdin.readline()
    for n in range(appends):
        stream_id = f"stream-{rng.randrange(streams)}"
        version = store.stream_version(stream_id)
        try:
            result = store.append(stream_id, [Noted(f"{worker}-{n}")], expected_version=version)
        except ConcurrencyError:
            lost += 1
        else:
            won.append([stream_id, result.version, result.positions[0], f"{worker}-{n}"])
    store.close()
    say(json.dumps({"won": won, "lost": lost}))


def dump(path):
    with SQLiteEventStore(path, registry=contract_registry) as store:
        say(json.dumps([describe(recorded) for recorded in store.read_all()]))


def describe(recorded):
    return [
        recorded.stream_id,
        recorded.version,
        recorded.position,
        str(recorded.event_id),
        recorded.recorded_at.isoformat(),
        dict(recorded.metadata),
        recorded.event_type,
        repr(recorded.event),
    ]


if __name__ == "__main__":
    command, path, *args = sys.argv[1:]
    if command == "append":
        worker, appends, streams, synchronous = args
        append(path, int(worker), int(appends), int(streams), synchronous)
    else:
        dump(path)

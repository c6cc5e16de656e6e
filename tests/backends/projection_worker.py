"""A separate process running a projection on an SQLite file, for the multi-process tests.

``python -m tests.backends.projection_worker catch-up PATH BLOCK_AT`` catches the SQL
ledger up in batches of 500 and, on reaching position BLOCK_AT (in the middle of a batch,
its transaction open), prints ``blocked`` and waits to be killed.

``python -m tests.backends.projection_worker follow PATH`` runs the SQL ledger in the
background, prints ``active`` once it holds the projection, and runs until killed.
"""

import sys
import time

from eventkit import ProjectionRunner, ProjectionState, SQLiteEventStore
from tests.bank import registry
from tests.projection_helpers import SQLLedger


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def block_at(position):
    def block(recorded):
        if recorded.position == position:
            say("blocked")
            time.sleep(3600)

    return block


def catch_up(path, position):
    store = SQLiteEventStore(path, registry=registry, synchronous="NORMAL")
    ledger = SQLLedger(block=block_at(position))
    ProjectionRunner(store, ledger, batch_size=500).run_until_caught_up()
    say("finished")  # the test fails if it gets here: it should have been killed


def follow(path):
    store = SQLiteEventStore(path, registry=registry, synchronous="NORMAL")
    runner = ProjectionRunner(store, SQLLedger(), poll_interval=0.05)
    runner.start()
    while runner.status()[SQLLedger.name].state is not ProjectionState.ACTIVE:
        time.sleep(0.01)
    runner.wait_for(0)
    say("active")
    time.sleep(3600)


if __name__ == "__main__":
    command, path, *args = sys.argv[1:]
    if command == "catch-up":
        catch_up(path, int(args[0]))
    else:
        follow(path)

"""
A process manager process for the kill loop: ``python -m tests.process_worker PATH``.

Runs the test's mirror process manager over the SQLite file PATH until it has caught
up, printing ``started`` once it is about to begin. Its handler takes a little time per
event, so that a kill lands in the middle of a catch-up.
"""

import sys
import time

from eventkit import ProcessManagerRunner, SQLiteEventStore
from tests.bank import registry
from tests.process_support import Mirror


class SlowMirror(Mirror):
    def handle(self, recorded, process):
        time.sleep(0.002)
        super().handle(recorded, process)


def main(path: str) -> None:
    with SQLiteEventStore(path, registry=registry) as store:
        runner = ProcessManagerRunner(store, SlowMirror(), batch_size=10)
        sys.stdout.write("started\n")
        sys.stdout.flush()
        runner.run_until_caught_up()


if __name__ == "__main__":
    main(sys.argv[1])

"""The crash loop shared by the brokers' crash tests: a writer appends, the relay is killed."""

import asyncio
import os
import pathlib
import random
import subprocess
import sys
import threading
import time
from decimal import Decimal

from eventkit import AsyncSQLiteEventStore, AsyncSubscriberRunner, Relay, SQLiteEventStore
from tests.bank import MoneyDeposited, registry

ROOT = pathlib.Path(__file__).parent.parent
STREAMS = [f"account-{n}" for n in range(12)] + ["odd.stream id*>"]


class Writer:
    """Appends deposits to a few streams, in random order, in a thread, until stopped."""

    def __init__(self, path):
        self.store = SQLiteEventStore(path, registry=registry)
        self.stop = threading.Event()
        self.appended = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        rng = random.Random(7)
        while not self.stop.is_set():
            stream = rng.choice(STREAMS)
            count = rng.randint(1, 3)
            self.store.append(stream, [MoneyDeposited(Decimal(rng.randint(1, 9)))] * count)
            self.appended += count
            time.sleep(0.005)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        self.store.close()


def kill_relay_repeatedly(path, kind, args, kills):
    """Start the relay process *kills* times and SIGKILL it at random moments; count the ways."""
    rng = random.Random(11)
    after_ack = 0
    for round_ in range(kills):
        env = dict(os.environ)
        by_itself = round_ % 3 == 0  # between the broker's ack and the checkpoint commit
        if by_itself:
            env["EVENTKIT_KILL_AFTER_ACK"] = str(rng.randint(1, 5))
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.relay_worker", kind, str(path), *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            if by_itself:
                process.wait(timeout=60)
                after_ack += process.returncode == -9
            else:
                process.stdout.readline()  # "active": it holds the lock and publishes
                time.sleep(rng.uniform(0.0, 0.4))
                process.kill()
                process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            process.stdout.close()
    return after_ack


def relay_to_the_end(path, publisher):
    """Run the relay in this process until it has published every stored event."""

    async def run():
        store = AsyncSQLiteEventStore(path, registry=registry)
        try:
            runner = AsyncSubscriberRunner(store, Relay(publisher), batch_size=50)
            await runner.run_until_caught_up(timeout=60)
            status = (await runner.status())["relay"]
            await publisher.close()
            return status
        finally:
            await store.close()

    return asyncio.run(run())

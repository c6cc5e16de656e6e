"""A relay in its own process, for the crash tests: run until killed.

``python -m tests.relay_worker nats PATH URL STREAM PREFIX`` or
``python -m tests.relay_worker kafka PATH BOOTSTRAP TOPIC`` relays the SQLite store at
PATH, in batches of 20, and prints ``active`` once it holds the relay's lock. With
``EVENTKIT_KILL_AFTER_ACK=N`` set, it kills itself (SIGKILL) right after the broker
acknowledged its N-th run of messages, before the checkpoint moves past them.
"""

import asyncio
import os
import signal
import sys

from eventkit import AsyncSQLiteEventStore, AsyncSubscriberRunner, ProjectionState, Relay
from tests.bank import registry


class KillAfterAck:
    """Wraps a publisher: SIGKILLs this process after the N-th acknowledged run."""

    def __init__(self, publisher, after):
        self.publisher = publisher
        self.after = after

    async def open(self):
        await self.publisher.open()

    async def publish(self, messages):
        await self.publisher.publish(messages)
        self.after -= 1
        if self.after == 0:
            os.kill(os.getpid(), signal.SIGKILL)

    async def close(self):
        await self.publisher.close()


def publisher(kind, args):
    if kind == "nats":
        from eventkit import NatsPublisher  # noqa: PLC0415

        url, stream, prefix = args
        return NatsPublisher(url, stream=stream, subject_prefix=prefix, ack_timeout=2.0)
    from eventkit import KafkaPublisher  # noqa: PLC0415

    bootstrap, topic = args
    return KafkaPublisher({"bootstrap.servers": bootstrap, "log_level": 2}, topic=topic)


async def main(kind, path, *args):
    chosen = publisher(kind, args)
    after = int(os.environ.get("EVENTKIT_KILL_AFTER_ACK", "0"))
    if after:
        chosen = KillAfterAck(chosen, after)
    store = AsyncSQLiteEventStore(path, registry=registry)
    runner = AsyncSubscriberRunner(store, Relay(chosen), batch_size=20, poll_interval=0.05)
    async with runner:
        announced = False
        while True:
            if not announced and (await runner.status())["relay"].state is ProjectionState.ACTIVE:
                sys.stdout.write("active\n")
                sys.stdout.flush()
                announced = True
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))

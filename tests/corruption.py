"""
Damaging stored rows on purpose, one backend at a time.

Each `Rows` class reaches into one backend's storage and changes the columns of one
stored event or snapshot, as an operator editing the database by hand (or a disk
losing bits) would. A backend that stores bytes can hold a column of another type
than the one written (`Rows.typed_columns` is False); the tests then damage column
types too. Add a class here for each new backend (PostgreSQL: UPDATE through a
psycopg connection), and list it in `ROWS`.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from hypothesis import strategies as st

from eventkit import InMemoryEventStore, SQLiteEventStore
from tests.exact_events import ACCEPTED, REPLACEMENTS, json_kind


class InMemoryRows:
    """The in-memory store keeps records as tuples: only their text can be damaged."""

    name = "memory"
    typed_columns = True

    def make_store(self, registry):
        return InMemoryEventStore(registry=registry)

    def event(self, store, position) -> dict[str, Any]:
        return store._log[position - 1]._asdict()

    def change_event(self, store, position, **columns):
        old = store._log[position - 1]
        new = old._replace(**columns)
        store._log[position - 1] = new
        store._streams[old.stream_id][old.version - 1] = new

    def snapshot(self, store, stream_id) -> dict[str, Any]:
        columns = store._snapshots[stream_id]._asdict()
        return {**columns, "event_id": columns["event_id"].bytes}  # as a database holds it

    def change_snapshot(self, store, stream_id, **columns):
        store._snapshots[stream_id] = store._snapshots[stream_id]._replace(**columns)


class SQLiteRows:
    """SQLite keeps whatever value is written to a column: types can be damaged too."""

    name = "sqlite"
    typed_columns = False
    _EVENT_COLUMNS: ClassVar = (
        "stream_id, version, position, event_id, event_type, schema_version, data, "
        "metadata, recorded_at"
    )

    def make_store(self, registry):
        return SQLiteEventStore(":memory:", registry=registry)

    def event(self, store, position) -> dict[str, Any]:
        row = store._writer.execute(
            f"SELECT {self._EVENT_COLUMNS} FROM eventkit_events WHERE position = ?",  # noqa: S608 (the test's own column names)
            (position,),
        ).fetchone()
        return dict(zip(self._EVENT_COLUMNS.split(", "), row, strict=True))

    def change_event(self, store, position, **columns):
        sets = ", ".join(f"{name} = ?" for name in columns)
        store._writer.execute(
            f"UPDATE eventkit_events SET {sets} WHERE position = ?",  # noqa: S608 (the test's own column names)
            (*columns.values(), position),
        )

    def snapshot(self, store, stream_id) -> dict[str, Any]:
        cursor = store._writer.execute(
            "SELECT * FROM eventkit_snapshots WHERE stream_id = ?", (stream_id,)
        )
        names = [column[0] for column in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))

    def change_snapshot(self, store, stream_id, **columns):
        sets = ", ".join(f"{name} = ?" for name in columns)
        store._writer.execute(
            f"UPDATE eventkit_snapshots SET {sets} WHERE stream_id = ?",  # noqa: S608 (the test's own column names)
            (*columns.values(), stream_id),
        )


ROWS = [InMemoryRows(), SQLiteRows()]


# -- ways to damage JSON text ------------------------------------------------------------------


@st.composite
def damaged_object(draw, text: str, accepted: dict[str, set[str]]) -> str:
    """
    Return the JSON object *text* damaged so that no strict reader can accept it.

    A value is given a JSON kind its field does not accept, a key is dropped or one
    added, the text is cut short or replaced by what is not an object.
    """
    data = json.loads(text)
    ways = ["truncate", "not json", "not an object", "add a key"]
    if data:
        ways += ["drop a key", "change a type"]
    way = draw(st.sampled_from(ways))
    if way == "truncate":
        return text[: draw(st.integers(0, len(text) - 1))]
    if way == "not json":
        return draw(st.sampled_from(["", "not json", "NaN", "{'single': 'quotes'}", "{1: 2}"]))
    if way == "not an object":
        return json.dumps(draw(st.sampled_from([[], "text", 3, None, True])))
    if way == "add a key":
        key = draw(st.text(min_size=1, max_size=5).filter(lambda k: k not in data))
        return json.dumps({**data, key: draw(st.sampled_from(list(REPLACEMENTS.values())))})
    key = draw(st.sampled_from(sorted(data)))
    if way == "drop a key":
        return json.dumps({k: v for k, v in data.items() if k != key})
    wrong = sorted(set(REPLACEMENTS) - accepted.get(key, set()) - {json_kind(data[key])})
    return json.dumps({**data, key: REPLACEMENTS[draw(st.sampled_from(wrong))]})


@st.composite
def damaged_metadata(draw, text: str) -> str:
    """Return metadata text that is not a JSON object of strings."""
    data = json.loads(text)
    ways = ["not json", "not an object", "a value not a string"]
    if text != "{}":
        ways.append("truncate")
    way = draw(st.sampled_from(ways))
    if way == "truncate":
        return text[: draw(st.integers(1, len(text) - 1))]
    if way == "not json":
        return draw(st.sampled_from(["", "nope", "{", "NaN"]))
    if way == "not an object":
        return json.dumps(draw(st.sampled_from([["a"], "a", 1, None])))
    value = draw(st.sampled_from([None, 1, 1.5, True, [], {}]))
    return json.dumps({**data, draw(st.text(max_size=4)): value})


# -- ways to damage a column's type (backends that store bytes) ---------------------------------

EVENT_COLUMN_DAMAGE = {
    "version": ["x1", 1.5, b"\x01"],
    "event_id": [b"\x00" * 15, b"\x00" * 17, "0" * 32, 5],
    "schema_version": ["one", 1.5, b"\x01"],
    "recorded_at": ["yesterday", "2024-01-01T00:00:00", 1_700_000_000, b"\x00"],
    "data": [b"{}"],
    "metadata": [b"{}", 1],
    "event_type": [b"exact.Scalars", 7],
}


def field_kinds() -> dict[str, set[str]]:
    """Return the JSON kinds each field of the exact events accepts."""
    return ACCEPTED

"""Building stored records by hand, for tests of decoding."""

from datetime import UTC, datetime

from eventkit.backends import EventRecord, NewRecord


def stored(
    new: NewRecord, *, stream_id="s", version=1, recorded_at: datetime | None = None
) -> EventRecord:
    """Return *new* as a backend would return it once stored at *version* (and position)."""
    return EventRecord(
        stream_id,
        version,
        version,
        new.event_id,
        new.event_type,
        new.schema_version,
        new.data,
        new.metadata,
        datetime.now(UTC) if recorded_at is None else recorded_at,
    )

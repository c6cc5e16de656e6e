"""Storage backends: each implements the record-level half of `BaseEventStore`."""

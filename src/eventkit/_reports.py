"""What `verify` and `migrate` report: plain data, shared by the sync and async forms."""

from __future__ import annotations

import attrs


@attrs.frozen
class VerifyFailure:
    """
    The first stored event of a (type, schema version) that failed to load.

    Attributes:
        stream_id: The event's stream.
        version: The event's version in its stream.
        position: The event's global position.
        error: The error, as ``"ErrorClass: message"``.

    .. versionadded:: 0.1.0
    """

    stream_id: str
    version: int
    position: int
    error: str

    def __str__(self) -> str:
        return f"stream {self.stream_id!r} version {self.version}: {self.error}"


@attrs.frozen
class VerifyGroup:
    """
    How the stored events of one type name and schema version fared in `verify`.

    Attributes:
        event_type: The stored type name.
        schema_version: The stored schema version.
        loaded: How many events decoded to a current class (or to a `RetiredEvent`).
        failed: How many did not.
        first_failure: The first that did not, in position order, or None.

    .. versionadded:: 0.1.0
    """

    event_type: str
    schema_version: int
    loaded: int
    failed: int
    first_failure: VerifyFailure | None = None

    def __str__(self) -> str:
        line = f"{self.event_type} v{self.schema_version}: {self.loaded} load"
        if self.first_failure is not None:
            line += f", {self.failed} fail; first: {self.first_failure}"
        return line


@attrs.frozen
class VerifyReport:
    """
    What `verify` found: per stored (type name, schema version), how many events load.

    ``str(report)`` is a readable report, one line per group.

    Attributes:
        groups: One `VerifyGroup` per stored (type name, schema version), sorted.

    .. versionadded:: 0.1.0
    """

    groups: tuple[VerifyGroup, ...]

    @property
    def loaded(self) -> int:
        """How many stored events load."""
        return sum(group.loaded for group in self.groups)

    @property
    def failed(self) -> int:
        """How many stored events fail to load."""
        return sum(group.failed for group in self.groups)

    @property
    def ok(self) -> bool:
        """Whether every stored event loads."""
        return self.failed == 0

    def __str__(self) -> str:
        total = self.loaded + self.failed
        head = f"verified {total} events: {self.loaded} load, {self.failed} fail"
        return "\n".join([head, *(f"  {group}" for group in self.groups)])


@attrs.frozen
class MigrationReport:
    """
    How far `migrate` got: passed to its *progress* callback, and returned at the end.

    ``str(report)`` is a one-line progress message.

    Attributes:
        copied: Events copied so far (in a dry run: that would be copied).
        upcast: How many of them were stored at an older schema version or type name.
        position: The source position copied up to.
        head_position: The source's head position when the migration started.
        dry_run: Whether nothing is written.

    .. versionadded:: 0.1.0
    """

    copied: int
    upcast: int
    position: int
    head_position: int
    dry_run: bool = False

    def __str__(self) -> str:
        verb = "dry run: would copy" if self.dry_run else "copied"
        return (
            f"{verb} {self.copied} events ({self.upcast} upcast), up to position "
            f"{self.position} of {self.head_position}"
        )

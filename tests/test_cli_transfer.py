"""eventkit export and import: lossless copies between backends, resumable imports."""

import json
import signal
import subprocess
import time

import pytest

from eventkit import EventRegistry, PostgresEventStore, SQLiteEventStore
from eventkit._cli import main
from tests.backends.postgres_support import DSN, new_schema
from tests.cli_support import COMMAND, all_records, eventkit, sqlite_store, start


def sqlite(url):
    return SQLiteEventStore(url.removeprefix("sqlite:///"), registry=EventRegistry())


@pytest.fixture(name="source")
def _source(tmp_path):
    """An SQLite store of 60 varied events in three interleaved streams; its URL."""
    return sqlite_store(tmp_path / "source.db", 60)


@pytest.fixture(name="exported")
def _exported(tmp_path, source):
    """The source store exported to a file, by the command."""
    path = tmp_path / "events.jsonl"
    done = eventkit("export", path, "--store", source)
    assert (done.returncode, done.stdout) == (0, "")
    return path


class TestExport:
    def test_the_file_has_a_header_the_events_and_an_end(self, exported, source):
        """Line 1 names the format and version, then one line per event, then the count."""
        lines = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
        assert (lines[0]["format"], lines[0]["format_version"], lines[0]["source"]) == (
            "eventkit-export",
            1,
            source,
        )
        assert (len(lines), lines[-1]) == (62, {"end": True, "events": 60})

    def test_events_are_written_exactly_as_stored(self, exported, source):
        """Every field of each event line equals the stored record's, text for text."""
        with sqlite(source) as store:
            stored = list(store.read_all_records())
        lines = exported.read_text(encoding="utf-8").splitlines()[1:-1]
        written = [json.loads(line) for line in lines]
        assert written == [
            {
                **record._asdict(),
                "event_id": str(record.event_id),
                "recorded_at": record.recorded_at.isoformat(timespec="microseconds"),
            }
            for record in stored
        ]

    def test_an_existing_file_is_not_overwritten(self, exported, source):
        """export refuses to replace a file unless --force says so."""
        done = eventkit("export", exported, "--store", source)
        assert (done.returncode, done.stderr) == (
            1,
            f"eventkit: error: {exported} exists; add --force to overwrite it\n",
        )


class TestImport:
    def test_sqlite_to_sqlite_keeps_every_field(self, tmp_path, exported, source):
        """A fresh SQLite store gets every event with every field as in the source."""
        target = f"sqlite:///{tmp_path / 'copy.db'}"
        done = eventkit("import", exported, "--store", target)
        assert (done.returncode, done.stderr.startswith("imported 60 events from ")) == (0, True)
        with sqlite(source) as before, sqlite(target) as after:
            assert all_records(after) == all_records(before)

    def test_sqlite_to_postgres_keeps_every_field(self, schemas, exported, source):
        """A PostgreSQL store gets every event with every field as in the SQLite source."""
        schemas.append(new_schema())
        target = f"{DSN}?schema={schemas[-1]}"
        done = eventkit("import", exported, "--store", target)
        assert done.returncode == 0, done.stderr
        with (
            sqlite(source) as before,
            PostgresEventStore(DSN, schema=schemas[-1], registry=EventRegistry()) as after,
        ):
            copied = list(after.read_all_records())
            assert [r._replace(position=0) for r in copied] == all_records(before)
        positions = [record.position for record in copied]
        assert positions == sorted(set(positions))

    def test_a_pipe_carries_a_store_from_export_to_import(self, tmp_path, source):
        """export - writes to standard output and import - reads standard input."""
        target = f"sqlite:///{tmp_path / 'piped.db'}"
        exporting = start("export", "-", "--store", source)
        importing = subprocess.run(
            [*COMMAND, "import", "-", "--store", target],
            stdin=exporting.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        exporting.wait(30)
        exporting.stdout.close()
        exporting.stderr.close()
        assert (exporting.returncode, importing.returncode) == (0, 0), importing.stderr
        with sqlite(source) as before, sqlite(target) as after:
            assert all_records(after) == all_records(before)

    def test_a_non_empty_target_is_refused(self, exported, source, capsys):
        """Without --resume, importing into a store that holds events changes nothing."""
        assert main(["import", str(exported), "--store", source]) == 1
        assert "the target store is not empty" in capsys.readouterr().err
        with sqlite(source) as store:
            assert store.head_position() == 60

    def test_resume_skips_what_is_stored(self, tmp_path, exported):
        """Importing again with --resume stores nothing twice."""
        target = f"sqlite:///{tmp_path / 'copy.db'}"
        assert main(["import", str(exported), "--store", target]) == 0
        assert main(["import", str(exported), "--store", target, "--resume"]) == 0
        with sqlite(target) as store:
            assert store.head_position() == 60

    def test_a_file_cut_short_is_reported_and_resumed(self, tmp_path, exported, source, capsys):
        """A file without its end line is imported and reported; the whole file completes it."""
        lines = exported.read_text(encoding="utf-8").splitlines(keepends=True)
        cut = tmp_path / "cut.jsonl"
        cut.write_text("".join(lines[:38]), encoding="utf-8")
        target = f"sqlite:///{tmp_path / 'copy.db'}"
        assert main(["import", str(cut), "--store", target]) == 1
        assert "the export was cut short (37 events read and imported)" in capsys.readouterr().err
        assert main(["import", str(exported), "--store", target, "--resume"]) == 0
        with sqlite(source) as before, sqlite(target) as after:
            assert all_records(after) == all_records(before)

    def test_resume_settles_a_stream_stored_in_part(self, tmp_path, capsys):
        """A stream whose first events are stored gets only the rest on --resume."""
        source = sqlite_store(tmp_path / "one.db", 40, streams=1)
        exported = tmp_path / "one.jsonl"
        assert main(["export", str(exported), "--store", source]) == 0
        lines = exported.read_text(encoding="utf-8").splitlines(keepends=True)
        cut = tmp_path / "cut.jsonl"
        cut.write_text("".join(lines[:26]), encoding="utf-8")
        target = f"sqlite:///{tmp_path / 'copy.db'}"
        assert main(["import", str(cut), "--store", target]) == 1
        assert main(["import", str(exported), "--store", target, "--resume"]) == 0
        with sqlite(source) as before, sqlite(target) as after:
            assert all_records(after) == all_records(before)

    def test_resume_refuses_a_stream_that_holds_other_events(self, tmp_path, exported, capsys):
        """A target whose stream holds another event at a version of the file's fails."""
        target = f"sqlite:///{tmp_path / 'other.db'}"
        sqlite_store(tmp_path / "other.db", 3)
        assert main(["import", str(exported), "--store", target, "--resume"]) == 1
        assert "in the target is event " in capsys.readouterr().err

    @pytest.mark.parametrize(
        ("first_line", "message"),
        [
            ('{"format": "csv"}', "line 1: not an eventkit export"),
            ('{"format": "eventkit-export", "format_version": 9}', "format version 9"),
            ("[1, 2]", "line 1: not a JSON object"),
            ("{oops", "line 1: not a line of JSON"),
        ],
    )
    def test_a_file_that_is_not_an_export_is_refused(self, tmp_path, first_line, message, capsys):
        """A file whose first line is not an export header fails in one line, exit code 1."""
        path = tmp_path / "bad.jsonl"
        path.write_text(first_line + "\n", encoding="utf-8")
        target = f"sqlite:///{tmp_path / 'copy.db'}"
        assert main(["import", str(path), "--store", target]) == 1
        err = capsys.readouterr().err
        assert (message in err, err.count("\n")) == (True, 1)

    def test_a_malformed_event_names_its_line(self, tmp_path, exported, capsys):
        """An event line with a field of the wrong kind is named by its line number."""
        lines = exported.read_text(encoding="utf-8").splitlines(keepends=True)
        lines[3] = lines[3].replace('"version":', '"version":"x",').replace('"x",1', '"x"')
        path = tmp_path / "bad.jsonl"
        path.write_text("".join(lines), encoding="utf-8")
        target = f"sqlite:///{tmp_path / 'copy.db'}"
        assert main(["import", str(path), "--store", target]) == 1
        assert f"{path} line 4: a field of the event has the wrong type" in (
            capsys.readouterr().err
        )

    def test_a_missing_file_is_one_line(self, tmp_path, capsys):
        """An import of a file that is not there fails at once, exit code 1."""
        target = f"sqlite:///{tmp_path / 'copy.db'}"
        assert main(["import", str(tmp_path / "none.jsonl"), "--store", target]) == 1
        assert capsys.readouterr().err.endswith("none.jsonl: no such file\n")


class TestInterruptedImport:
    COUNT = 4000

    def test_a_killed_import_completes_on_rerun_without_duplicates_or_gaps(self, tmp_path):
        """SIGKILL half-way through an import; --resume then stores every event exactly once."""
        source = sqlite_store(tmp_path / "big.db", self.COUNT, streams=2)
        exported = tmp_path / "big.jsonl"
        assert eventkit("export", exported, "--store", source).returncode == 0
        target = f"sqlite:///{tmp_path / 'copy.db'}"
        process = start("import", exported, "--store", target)
        try:
            stored = _wait_for_events(tmp_path / "copy.db", at_least=200)
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        finally:
            process.stdout.close()
            process.stderr.close()
        with sqlite(target) as store:
            before = store.head_position()
        assert (stored >= 200, before < self.COUNT) == (True, True)
        done = eventkit("import", exported, "--store", target, "--resume")
        assert done.returncode == 0, done.stderr
        with sqlite(source) as original, sqlite(target) as copy:
            records = list(copy.read_all_records())
            assert [r._replace(position=0) for r in records] == all_records(original)
        assert [r.position for r in records] == list(range(1, self.COUNT + 1))
        assert len({r.event_id for r in records}) == self.COUNT


def _wait_for_events(path, *, at_least):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.exists():
            try:
                with SQLiteEventStore(path, registry=EventRegistry(), read_only=True) as store:
                    head = store.head_position()
            except Exception:  # noqa: BLE001 (the tables may not exist yet)
                head = 0
            if head >= at_least:
                return head
        time.sleep(0.005)
    raise AssertionError(f"the import stored fewer than {at_least} events in 30 seconds")

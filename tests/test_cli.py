"""The eventkit command: verify an SQLite store from the shell."""

import pathlib
import sys
import textwrap
import tomllib
import uuid

import attrs
import pytest

from eventkit import ANY, EventRegistry, SQLiteEventStore, event
from eventkit._cli import _parser, main
from eventkit.backends import NewRecord, RecordWrite
from tests.evolution import release_3

ROOT = pathlib.Path(__file__).parent.parent
RELEASE_3 = "tests.evolution:release_3"

# A registry whose type is at version 2 with no upcaster from version 1.
broken = EventRegistry()


@event("cli.Broken", version=2, registry=broken)
@attrs.frozen
class Broken:
    n: int


def raw(stream_id, event_type, schema_version, data):
    record = NewRecord(uuid.uuid4(), event_type, schema_version, data, "{}")
    return RecordWrite(stream_id, (record,), ANY)


@pytest.fixture(name="database")
def _database(tmp_path):
    """An SQLite store file holding a v1 deposit, and return its path."""
    path = tmp_path / "ledger.db"
    with SQLiteEventStore(path, registry=release_3) as store:
        store.append_records([raw("a", "ledger.MoneyDeposited", 1, '{"amount":"1"}')])
    return path


@pytest.fixture(autouse=True)
def _restore_sys_path(monkeypatch):
    # The command puts the working directory on sys.path, as python -m does.
    monkeypatch.setattr(sys, "path", list(sys.path))


class TestVerify:
    def test_a_store_whose_events_all_load_exits_0(self, database, capsys):
        """Every event loads: the report is printed and the exit code is 0."""
        assert main(["verify", str(database), "--registry", RELEASE_3]) == 0
        assert capsys.readouterr().out == (
            "verified 1 events: 1 load, 0 fail\n  ledger.MoneyDeposited v1: 1 load\n"
        )

    def test_a_store_with_failing_events_exits_1(self, database, capsys):
        """Some event fails to load: the report names it and the exit code is 1."""
        with SQLiteEventStore(database, registry=release_3) as store:
            store.append_records([raw("b", "ledger.Vanished", 1, "{}")])
        assert main(["verify", str(database), "--registry", RELEASE_3]) == 1
        assert "ledger.Vanished v1: 0 load, 1 fail; first: stream 'b' version 1" in (
            capsys.readouterr().out
        )

    def test_import_registers_the_applications_events_first(self, tmp_path, monkeypatch, capsys):
        """--import loads a module from the working directory before the store is read."""
        (tmp_path / "cli_events.py").write_text(
            textwrap.dedent(
                """
                import attrs
                from eventkit import EventRegistry, event

                registry = EventRegistry()

                @event("cli.Probe", registry=registry)
                @attrs.frozen
                class Probe:
                    n: int
                """
            )
        )
        path = tmp_path / "probe.db"
        with SQLiteEventStore(path, registry=release_3) as store:
            store.append_records([raw("p", "cli.Probe", 1, '{"n":1}')])
        monkeypatch.chdir(tmp_path)
        monkeypatch.delitem(sys.modules, "cli_events", raising=False)
        code = main(
            ["verify", str(path), "--import", "cli_events", "--registry", "cli_events:registry"]
        )
        assert (code, capsys.readouterr().out.splitlines()[1]) == (0, "  cli.Probe v1: 1 load")

    def test_without_registry_the_default_registry_is_used(self, tmp_path, monkeypatch, capsys):
        """Events imported into eventkit.default_registry are what verify reads with."""
        (tmp_path / "cli_default_events.py").write_text(
            textwrap.dedent(
                """
                import attrs
                from eventkit import event

                @event("cli.DefaultProbe")
                @attrs.frozen
                class DefaultProbe:
                    n: int
                """
            )
        )
        path = tmp_path / "default.db"
        with SQLiteEventStore(path, registry=release_3) as store:
            store.append_records([raw("p", "cli.DefaultProbe", 1, '{"n":1}')])
        monkeypatch.chdir(tmp_path)
        monkeypatch.delitem(sys.modules, "cli_default_events", raising=False)
        assert main(["verify", str(path), "--import", "cli_default_events"]) == 0
        assert capsys.readouterr().out.splitlines()[1] == "  cli.DefaultProbe v1: 1 load"

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            (["--registry", "tests.evolution"], "--registry must be MODULE:NAME"),
            (["--registry", "tests.evolution:Money"], "is not an EventRegistry (got type)"),
            (["--import", "no_such_module_here"], "cannot import no_such_module_here"),
        ],
    )
    def test_bad_options_exit_2_with_a_message(self, database, capsys, options, message):
        """Options that cannot be acted on print an error and exit with 2."""
        assert main(["verify", str(database), *options]) == 2
        assert message in capsys.readouterr().err

    def test_a_missing_file_exits_2(self, tmp_path, capsys):
        """A path with no database is an error, not an empty store: nothing is created."""
        missing = tmp_path / "missing.db"
        assert main(["verify", str(missing), "--registry", RELEASE_3]) == 2
        assert ("no such file" in capsys.readouterr().err, missing.exists()) == (True, False)

    def test_a_broken_registry_exits_2_naming_the_gap(self, database, capsys):
        """The registry's chains are checked before any event is read."""
        assert main(["verify", str(database), "--registry", "tests.test_cli:broken"]) == 2
        assert "'cli.Broken': no upcaster from version 1 to version 2" in capsys.readouterr().err


class TestCommand:
    def test_the_console_script_runs_main(self):
        """pyproject.toml installs the eventkit command, running eventkit._cli:main."""
        scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
        assert scripts == {"eventkit": "eventkit._cli:main"}

    def test_every_command_is_documented(self):
        """docs/reference/cli.md documents every subcommand of the eventkit command."""
        text = (ROOT / "docs" / "reference" / "cli.md").read_text()
        commands = _parser()._subparsers._group_actions[0].choices
        assert [name for name in commands if f"## eventkit {name}" not in text] == []

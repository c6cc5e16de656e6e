"""The eventkit command: its commands, output, errors and exit codes."""

import importlib.util
import json
import pathlib
import re
import subprocess
import sys
import textwrap
import tomllib
import uuid
from importlib.metadata import version

import click
import pytest

import eventkit._cli._runners  # registers the projections commands
from eventkit import ANY, EventRegistry, SQLiteEventStore
from eventkit._cli import _app, main
from eventkit.backends import NewRecord, RecordWrite
from tests.backends.postgres_support import DSN, new_schema
from tests.cli_support import COMMAND, eventkit, sqlite_store

ROOT = pathlib.Path(__file__).parent.parent


def raw(stream_id, event_type, schema_version, data, metadata="{}"):
    record = NewRecord(uuid.uuid4(), event_type, schema_version, data, metadata)
    return RecordWrite(stream_id, (record,), ANY)


@pytest.fixture(name="shop")
def _shop(tmp_path):
    """A small SQLite store: three streams, two types at two schema versions, a projection."""
    path = tmp_path / "shop.db"
    with SQLiteEventStore(path, registry=EventRegistry()) as store:
        store.append_records([raw("order-1", "shop.Ordered", 1, '{"sku":"a"}')])
        store.append_records([raw("order-2", "shop.Ordered", 2, '{"sku":"b"}')])
        store.append_records([raw("order-1", "shop.Paid", 1, "{}", '{"by":"ada"}')])
        store.append_records([raw("cart-9", "shop.Ordered", 2, '{"sku":"c"}')])
        with store.transaction() as conn:
            conn.execute(
                "INSERT INTO eventkit_projection_checkpoints (name, position, version) "
                "VALUES ('orders', 1, 3)"
            )
    return f"sqlite:///{path}"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    # The command reads these: a developer's own settings must not leak into the tests.
    monkeypatch.delenv("EVENTKIT_STORE", raising=False)
    monkeypatch.delenv("EVENTKIT_APP", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))


class TestInfo:
    def test_the_table_shows_the_stores_figures(self, shop, capsys):
        """info prints the head, streams, events, types per schema version and projections."""
        assert main(["info", "--store", shop]) == 0
        lines = capsys.readouterr().out.splitlines()
        size = lines[4]
        assert lines[:4] + lines[5:] == [
            f"Store          {shop}",
            "Head position  4",
            "Streams        3",
            "Events         4",
            "",
            "Event types",
            "Event type    Schema version  Events",
            "shop.Ordered               1       1",
            "shop.Ordered               2       2",
            "shop.Paid                  1       1",
            "",
            "Projections",
            "Projection  Version  Position  Lag (events)  Dead letters",
            "orders            3         1             3             0",
        ]
        assert (size[:15], size[-7:]) == ("Size           ", " bytes)")

    def test_json_output_parses_and_holds_the_same_figures(self, shop, capsys):
        """info --json prints one JSON object with the figures of the table."""
        assert main(["info", "--store", shop, "--json"]) == 0
        found = json.loads(capsys.readouterr().out)
        assert (found["head_position"], found["streams"], found["events"]) == (4, 3, 4)
        assert found["event_types"][1] == {
            "event_type": "shop.Ordered",
            "schema_version": 2,
            "events": 2,
        }
        assert found["projections"] == [
            {"name": "orders", "version": 3, "position": 1, "lag_events": 3, "dead_letters": 0}
        ]

    def test_an_empty_store_has_no_projections(self, tmp_path, capsys):
        """A store without checkpoints says so instead of printing an empty table."""
        url = sqlite_store(tmp_path / "empty.db", 0)
        assert main(["info", "--store", url]) == 0
        assert capsys.readouterr().out.splitlines()[-1] == (
            "No projection has a checkpoint in this store."
        )

    def test_the_store_can_come_from_the_environment(self, shop, monkeypatch, capsys):
        """EVENTKIT_STORE stands in for --store."""
        monkeypatch.setenv("EVENTKIT_STORE", shop)
        assert main(["info", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["events"] == 4


class TestInfoOnPostgres:
    def test_json_names_the_size_and_the_events_held_back(self, schemas, tmp_path, capsys):
        """On PostgreSQL, info reports the tables' size and the events held back."""
        schemas.append(new_schema())
        url = f"{DSN}?schema={schemas[-1]}"
        exported = tmp_path / "e.jsonl"
        assert main(["export", str(exported), "--store", sqlite_store(tmp_path / "s.db", 5)]) == 0
        assert main(["import", str(exported), "--store", url]) == 0
        capsys.readouterr()
        assert main(["info", "--store", url]) == 0
        assert "Held back " in capsys.readouterr().out
        assert main(["info", "--store", url, "--json"]) == 0
        found = json.loads(capsys.readouterr().out)
        # Events held back depend on every transaction of the server: only its kind is known.
        assert (found["events"], type(found["held_back_events"]), found["size_bytes"] > 0) == (
            5,
            int,
            True,
        )

    def test_a_schema_without_a_store_is_one_line(self, capsys):
        """Reading a schema that holds no store fails, and creates nothing."""
        assert main(["info", "--store", f"{DSN}?schema=eventkit_none_here"]) == 1
        assert "schema 'eventkit_none_here' has no tables" in capsys.readouterr().err


class TestListing:
    def test_streams_lists_ids_and_versions(self, shop, capsys):
        """streams prints each stream with its version, in id order."""
        assert main(["streams", "--store", shop]) == 0
        assert capsys.readouterr().out.splitlines() == [
            "Stream   Version",
            "cart-9         1",
            "order-1        2",
            "order-2        1",
        ]

    def test_streams_filters_by_prefix(self, shop, capsys):
        """--prefix keeps the streams whose id starts with it; --json prints JSON lines."""
        assert main(["streams", "--store", shop, "--prefix", "order-", "--json"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [json.loads(line) for line in lines] == [
            {"stream_id": "order-1", "version": 2},
            {"stream_id": "order-2", "version": 1},
        ]

    def test_read_json_uses_the_export_field_names(self, shop, capsys):
        """read --json prints each stored event with the export format's fields."""
        assert main(["read", "order-1", "--store", shop, "--json", "--from-version", "2"]) == 0
        (event,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert list(event) == [
            "stream_id",
            "version",
            "position",
            "event_id",
            "event_type",
            "schema_version",
            "data",
            "metadata",
            "recorded_at",
        ]
        assert (event["version"], event["event_type"], event["metadata"]) == (
            2,
            "shop.Paid",
            '{"by":"ada"}',
        )

    def test_read_shows_a_table_of_the_stream(self, shop, capsys):
        """read prints one row per event, with its stored data."""
        assert main(["read", "order-1", "--store", shop]) == 0
        rows = capsys.readouterr().out.splitlines()
        assert (len(rows), rows[1].split()[:5], rows[1].split()[-2]) == (
            3,
            ["1", "order-1", "1", "shop.Ordered", "1"],
            '{"sku":"a"}',
        )

    def test_reading_a_missing_stream_fails(self, shop, capsys):
        """A stream with no events is an error, exit code 1, not an empty table."""
        assert main(["read", "nope", "--store", shop]) == 1
        assert capsys.readouterr().err == "eventkit: error: the store has no stream 'nope'\n"

    def test_tail_shows_the_last_events(self, shop, capsys):
        """tail -n 2 prints the two newest events, oldest first."""
        assert main(["tail", "-n", "2", "--store", shop, "--json"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [json.loads(line)["stream_id"] for line in lines] == ["order-1", "cart-9"]

    def test_tail_filters_by_type(self, shop, capsys):
        """--type keeps the events stored under that type name."""
        assert main(["tail", "--store", shop, "--json", "--type", "shop.Paid"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [json.loads(line)["event_type"] for line in lines] == ["shop.Paid"]

    def test_tail_follow_shows_new_events(self, shop):
        """tail --follow prints events appended after it started."""
        process = subprocess.Popen(
            [*COMMAND, "tail", "-n", "1", "-f", "--json", "--interval", "0.05", "--store", shop],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            first = process.stdout.readline()  # the newest event: it is following now
            with SQLiteEventStore(shop.removeprefix("sqlite:///"), registry=EventRegistry()) as s:
                s.append_records([raw("late", "shop.Late", 1, "{}")])
            second = process.stdout.readline()
        finally:
            process.kill()
            process.wait()
            process.stdout.close()
        assert [json.loads(line)["stream_id"] for line in (first, second)] == ["cart-9", "late"]


class TestVerify:
    APP_WITHOUT_UPCASTER = """
        import attrs
        from eventkit import event

        @event("shop.Ordered", version=2)
        @attrs.frozen
        class Ordered:
            sku: str
            quantity: int
    """
    UPCASTER = """
        from eventkit import upcaster

        @upcaster("shop.Ordered", 1)
        def ordered_v1_to_v2(data):
            return {**data, "quantity": 1}
    """

    @pytest.fixture(name="orders")
    def _orders(self, tmp_path):
        path = tmp_path / "orders.db"
        with SQLiteEventStore(path, registry=EventRegistry()) as store:
            store.append_records([raw("o-1", "shop.Ordered", 1, '{"sku":"a"}')])
            store.append_records([raw("o-2", "shop.Ordered", 2, '{"sku":"b","quantity":2}')])
        return f"sqlite:///{path}"

    def test_a_missing_upcaster_exits_1(self, tmp_path, orders):
        """A type at version 2 with no upcaster from version 1: verify fails naming the gap."""
        (tmp_path / "shop_events.py").write_text(textwrap.dedent(self.APP_WITHOUT_UPCASTER))
        done = eventkit("verify", "--store", orders, "--app", "shop_events", cwd=tmp_path)
        assert (done.returncode, done.stdout) == (1, "")
        assert done.stderr.startswith("eventkit: error: RegistrationError: ")
        assert "no upcaster from version 1 to version 2" in done.stderr

    def test_the_upcaster_added_makes_it_exit_0(self, tmp_path, orders):
        """Once the application registers the upcaster, every event loads: exit code 0."""
        app = self.APP_WITHOUT_UPCASTER + self.UPCASTER
        (tmp_path / "shop_events.py").write_text(textwrap.dedent(app))
        done = eventkit("verify", "--store", orders, "--app", "shop_events", cwd=tmp_path)
        assert (done.returncode, done.stdout.splitlines()) == (
            0,
            [
                "verified 2 events: 2 load, 0 fail",
                "  shop.Ordered v1: 1 load",
                "  shop.Ordered v2: 1 load",
            ],
        )

    def test_unregistered_types_suggest_the_app_option(self, orders):
        """Without the application, verify says why events fail and how to name it."""
        done = eventkit("verify", "--store", orders)
        assert done.returncode == 1
        assert "no class is registered for them ('shop.Ordered')" in done.stderr
        assert "--app MODULE (or EVENTKIT_APP)" in done.stderr

    def test_registry_names_an_event_registry(self, tmp_path, capsys):
        """--registry MODULE:NAME decodes with that registry (here, release 3 of a ledger)."""
        path = tmp_path / "ledger.db"
        with SQLiteEventStore(path, registry=EventRegistry()) as store:
            store.append_records([raw("a", "ledger.MoneyDeposited", 1, '{"amount":"1"}')])
        code = main(
            ["verify", "--store", f"sqlite:///{path}", "--registry", "tests.evolution:release_3"]
        )
        assert (code, capsys.readouterr().out) == (
            0,
            "verified 1 events: 1 load, 0 fail\n  ledger.MoneyDeposited v1: 1 load\n",
        )

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            (["--registry", "tests.evolution"], "--registry takes MODULE:NAME"),
            (["--registry", "tests.evolution:Money"], "is not an EventRegistry (it is a type)"),
            (["--app", "no_such_module_here"], "cannot import no_such_module_here"),
        ],
    )
    def test_bad_options_are_usage_errors(self, orders, capsys, options, message):
        """Options that cannot be acted on print one line and exit with 2."""
        assert main(["verify", "--store", orders, *options]) == 2
        err = capsys.readouterr().err
        assert (message in err, err.count("\n")) == (True, 1)


class TestErrors:
    def test_a_bad_url_is_a_usage_error(self):
        """A store URL that cannot be read gives one line on stderr and exit code 2."""
        done = eventkit("info", "--store", "mysql://ada:hunter22@db/shop")
        assert (done.returncode, done.stdout, done.stderr.count("\n")) == (2, "", 1)
        assert done.stderr.startswith("eventkit: error: unknown kind of store 'mysql'")

    def test_a_path_without_scheme_suggests_the_sqlite_url(self):
        """A bare file name is not a URL: the error shows the URL that would work."""
        done = eventkit("info", "--store", "shop.db")
        assert (done.returncode, "write sqlite:///shop.db" in done.stderr) == (2, True)

    def test_a_missing_file_fails_with_one_line(self, tmp_path):
        """A read of a file that does not exist exits 1 in one line, and creates nothing."""
        missing = tmp_path / "missing.db"
        done = eventkit("info", "--store", f"sqlite:///{missing}")
        assert (done.returncode, done.stderr.count("\n"), missing.exists()) == (1, 1, False)
        assert done.stderr.endswith("no such file\n")

    def test_an_unreachable_server_fails_with_one_line_and_no_password(self):
        """A server that does not answer: one line, exit code 1, the password masked."""
        done = eventkit("info", "--store", "postgresql://ada:hunter22@127.0.0.1:9/shop")
        assert (done.returncode, done.stderr.count("\n")) == (1, 1)
        assert done.stderr.startswith("eventkit: error: cannot connect to ")
        assert "postgresql://ada:***@127.0.0.1:9/shop" in done.stderr
        assert "hunter22" not in done.stderr + done.stdout

    def test_no_store_is_a_usage_error(self, capsys):
        """A command that needs a store and got none says how to give one."""
        assert main(["info"]) == 2
        assert "use --store URL or set EVENTKIT_STORE" in capsys.readouterr().err

    def test_help_exits_0(self, capsys):
        """--help prints the commands and exits with 0."""
        assert main(["--help"]) == 0
        assert "export" in capsys.readouterr().out

    def test_an_unknown_command_is_a_usage_error(self, capsys):
        """click's usage errors exit with 2."""
        assert main(["nonsense"]) == 2
        assert "No such command 'nonsense'" in capsys.readouterr().err

    def test_an_application_that_fails_to_import_is_one_line(self, shop, tmp_path, capsys):
        """An --app module that raises while importing fails with its error, exit code 1."""
        (tmp_path / "cli_broken_app.py").write_text("raise RuntimeError('no config')\n")
        sys.path.insert(0, str(tmp_path))
        assert main(["verify", "--store", shop, "--app", "cli_broken_app"]) == 1
        assert capsys.readouterr().err == (
            "eventkit: error: importing cli_broken_app failed: RuntimeError: no config\n"
        )

    def test_debug_shows_the_traceback(self, tmp_path):
        """--debug adds the traceback to the one-line message."""
        done = eventkit("info", "--store", f"sqlite:///{tmp_path / 'x.db'}", "--debug")
        assert (done.returncode, "Traceback (most recent call last)" in done.stderr) == (1, True)

    def test_version_prints_the_installed_version(self):
        """eventkit --version prints the distribution's version and exits 0."""
        done = eventkit("--version")
        assert (done.returncode, done.stdout) == (0, f"eventkit {version('eventkit-es')}\n")


class TestTheExtra:
    def test_a_missing_extra_is_named(self, monkeypatch, capsys):
        """Without click or rich, the command says which extra to install, exit code 1."""
        real = importlib.util.find_spec
        monkeypatch.setattr(
            importlib.util, "find_spec", lambda name: None if name == "rich" else real(name)
        )
        assert main(["info"]) == 1
        assert capsys.readouterr().err == (
            "eventkit: the eventkit command needs the 'cli' extra (rich is missing): "
            "pip install 'eventkit-es[cli]'\n"
        )

    def test_importing_eventkit_does_not_import_the_command_libraries(self):
        """import eventkit leaves click and rich unimported."""
        code = "import sys, eventkit; print(sorted({'click', 'rich'} & set(sys.modules)))"
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert done.stdout == "[]\n"

    def test_the_console_script_runs_main(self):
        """pyproject.toml installs the eventkit command, running eventkit._cli:main."""
        scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
        assert scripts == {"eventkit": "eventkit._cli:main"}


def _commands(group, path=("eventkit",)):
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


class TestDocs:
    PAGE = (ROOT / "docs" / "reference" / "cli.md").read_text()

    def sections(self):
        parts = re.split(r"\n#{2,3} ", self.PAGE)
        return {part.splitlines()[0]: part for part in parts[1:]}

    def test_every_command_has_a_section_with_an_example(self):
        """docs/reference/cli.md has a section per command, each with a $ example."""
        sections = self.sections()
        missing = [
            " ".join(path)
            for path, command in _commands(_app.cli)
            if not isinstance(command, click.Group)
            and f"$ {' '.join(path)}" not in sections.get(" ".join(path), "")
        ]
        assert missing == []

    def test_every_option_is_on_its_commands_section(self):
        """Each option and argument of a command is named in its section (or as a common one)."""
        sections = self.sections()
        missing = [
            f"{' '.join(path)} {name}"
            for path, command in _commands(_app.cli)
            if not isinstance(command, click.Group)
            for parameter in command.params
            for name in (
                parameter.opts
                if isinstance(parameter, click.Option)
                else [parameter.human_readable_name]
            )
            if name not in {"--help", "-h"}
            and name not in sections.get(" ".join(path), "") + sections["Common options"]
        ]
        assert missing == []

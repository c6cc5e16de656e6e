"""eventkit projections: the application's runner, driven from a shell."""

import json
import sqlite3
import sys
import textwrap
import uuid

import pytest

from eventkit import EventRegistry, SQLiteEventStore
from eventkit._cli import main
from eventkit.backends import NewRecord, RecordWrite

APP = """
    import pathlib

    import attrs

    from eventkit import EventRegistry, ParkOnError, Projection, ProjectionRunner, event

    registry = EventRegistry()
    FIXED = pathlib.Path(__file__).with_name("fixed")


    @event("shop.Ordered", registry=registry)
    @attrs.frozen
    class Ordered:
        sku: str


    class Orders(Projection):
        name = "orders"
        event_types = (Ordered,)
        tables = ("orders",)
        error_policy = ParkOnError()

        def setup(self, tx):
            tx.execute(self.sql("CREATE TABLE IF NOT EXISTS {orders} (sku TEXT)"))

        def handle(self, recorded, tx):
            if recorded.event.sku == "bad" and not FIXED.exists():
                raise ValueError("no such sku")
            tx.execute(self.sql("INSERT INTO {orders} VALUES (?)"), (recorded.event.sku,))


    def runner(store):
        return ProjectionRunner(store, Orders())


    not_a_runner = 42


    def not_a_factory(store):
        return "a runner, promised"
"""


@pytest.fixture(name="shop")
def _shop(tmp_path, monkeypatch):
    """A store with three orders and another event, and the application beside it."""
    (tmp_path / "cli_shop_app.py").write_text(textwrap.dedent(APP))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "cli_shop_app", raising=False)
    monkeypatch.delenv("EVENTKIT_STORE", raising=False)
    monkeypatch.setenv("EVENTKIT_APP", "cli_shop_app:runner")
    path = tmp_path / "shop.db"
    with SQLiteEventStore(path, registry=EventRegistry()) as store:
        for stream_id, event_type, data in [
            ("o-1", "shop.Ordered", '{"sku":"a"}'),
            ("o-2", "shop.Ordered", '{"sku":"bad"}'),
            ("o-3", "shop.Viewed", "{}"),
            ("o-4", "shop.Ordered", '{"sku":"c"}'),
        ]:
            record = NewRecord(uuid.uuid4(), event_type, 1, data, "{}")
            store.append_records([RecordWrite(stream_id, (record,), 0)])
    return path


def _orders(path):
    with sqlite3.connect(path) as conn:
        return sorted(row[0] for row in conn.execute("SELECT sku FROM orders"))


def _status(shop, capsys):
    assert (
        main(
            [
                "projections",
                "status",
                "--store",
                f"sqlite:///{shop}",
                "--json",
                "--registry",
                "cli_shop_app:registry",
            ]
        )
        == 0
    )
    return json.loads(capsys.readouterr().out)


class TestStatus:
    def test_a_projection_never_run_has_all_its_events_to_handle(self, shop, capsys):
        """Lag counts the events of the projection's types after its checkpoint."""
        assert _status(shop, capsys) == {
            "name": "orders",
            "version": 0,
            "position": 0,
            "lag_events": 3,
            "dead_letters": 0,
        }

    def test_a_table_on_the_terminal_or_a_pipe(self, shop, capsys):
        """Without --json the status is a table with one row per projection."""
        url = f"sqlite:///{shop}"
        assert (
            main(["projections", "status", "--store", url, "--registry", "cli_shop_app:registry"])
            == 0
        )
        assert capsys.readouterr().out.splitlines() == [
            "Projection  Version  Position  Lag (events)  Dead letters",
            "orders            0         0             3             0",
        ]


class TestRebuildAndDeadLetters:
    def test_rebuild_builds_the_read_model_and_parks_the_failure(self, shop, capsys):
        """rebuild applies every event; the failing one is parked and listed."""
        url = f"sqlite:///{shop}"
        args = ["--store", url, "--registry", "cli_shop_app:registry"]
        assert main(["projections", "rebuild", "orders", *args]) == 0
        assert _orders(shop) == ["a", "c"]
        capsys.readouterr()
        assert main(["projections", "dead-letters", "orders", *args, "--json"]) == 0
        (letter,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert (letter["stream_id"], letter["error"]) == ("o-2", "ValueError: no such sku")

    def test_retry_fails_while_the_cause_remains_and_succeeds_once_fixed(self, shop, capsys):
        """retry exits 1 when the parked event fails again, 0 once the handler accepts it."""
        args = ["--store", f"sqlite:///{shop}", "--registry", "cli_shop_app:registry"]
        assert main(["projections", "replay", "orders", *args]) == 0
        assert main(["projections", "retry", "orders", *args]) == 1
        (shop.parent / "fixed").touch()
        assert main(["projections", "retry", "orders", *args]) == 0
        assert "1 succeeded, 0 failed again" in capsys.readouterr().err
        assert _orders(shop) == ["a", "bad", "c"]
        assert _status(shop, capsys)["lag_events"] == 0


class TestFindingTheRunner:
    def test_no_runner_named_is_a_usage_error(self, shop, monkeypatch, capsys):
        """A module without :ATTRIBUTE names no runner: exit code 2, saying how to."""
        monkeypatch.setenv("EVENTKIT_APP", "cli_shop_app")
        assert main(["projections", "status", "--store", f"sqlite:///{shop}"]) == 2
        assert "with --app MODULE:ATTRIBUTE" in capsys.readouterr().err

    def test_an_attribute_that_is_no_runner_is_a_usage_error(self, shop, monkeypatch, capsys):
        """An attribute that is neither a runner nor a factory is refused, exit code 2."""
        monkeypatch.setenv("EVENTKIT_APP", "cli_shop_app:not_a_runner")
        assert main(["projections", "status", "--store", f"sqlite:///{shop}"]) == 2
        assert "is neither a ProjectionRunner nor a callable" in capsys.readouterr().err

    def test_a_factory_returning_something_else_is_a_usage_error(self, shop, monkeypatch, capsys):
        """A callable that does not return a ProjectionRunner is refused, exit code 2."""
        monkeypatch.setenv("EVENTKIT_APP", "cli_shop_app:not_a_factory")
        assert main(["projections", "status", "--store", f"sqlite:///{shop}"]) == 2
        assert "returned a str, not a ProjectionRunner" in capsys.readouterr().err

    def test_an_unknown_projection_fails(self, shop, capsys):
        """A projection name the runner does not run fails with one line."""
        url = f"sqlite:///{shop}"
        args = ["--store", url, "--registry", "cli_shop_app:registry"]
        assert main(["projections", "rebuild", "nope", *args]) == 1
        assert "no projection named 'nope'" in capsys.readouterr().err

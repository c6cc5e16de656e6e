"""Every example runs to completion and prints what it promises."""

import pathlib
import re
import subprocess
import sys
from typing import NamedTuple

import psycopg
import pytest

from tests.backends.postgres_support import DSN, drop_schemas, new_schema, require_server

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def run(name: str, *args: str, cwd=None) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_bank_account(tmp_path):
    """The bank account example refuses an overdraft, catches a conflict, travels in time."""
    out = run("bank_account.py", cwd=tmp_path)
    assert "refused: cannot withdraw 1000" in out
    assert "conflict: stream 'account-ada': expected version 3, actual version 4" in out
    assert "balance now 159.50 (version 5); after the salary 250.00" in out


def test_bank_account_rebuilds_the_buggy_interest_read_model(tmp_path):
    """The interest read model with a bug is rebuilt from history with the fix."""
    out = run("bank_account.py", cwd=tmp_path)
    assert "interest for 2026-01 (version 1): account-ada 0.90 on 360.50" in out
    assert "interest for 2026-01 (version 2): account-ada 0.40 on 159.50" in out


def test_bank_account_reruns_on_the_file_it_is_given(tmp_path):
    """Run twice on a path given as argument, the example starts afresh each time."""
    path = tmp_path / "ledger.db"
    run("bank_account.py", str(path), cwd=tmp_path)
    out = run("bank_account.py", str(path), cwd=tmp_path)
    assert "balance now 159.50 (version 5); after the salary 250.00" in out
    assert f"the events are in {path}" in out


def test_bank_account_leaves_nothing_for_git_to_show_but_its_database(tmp_path):
    """After the demo, git status in its folder lists bank.db alone: locks ignore themselves."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    run("bank_account.py", cwd=tmp_path)
    status = subprocess.run(
        ["git", "-C", str(tmp_path), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert status.splitlines() == ["?? bank.db"]


def test_bank_account_leaves_other_files_alone(tmp_path):
    """The example refuses to replace a file it did not write."""
    path = tmp_path / "notes.txt"
    path.write_text("precious")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "bank_account.py"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (result.returncode, path.read_text()) == (1, "precious")


def test_schema_evolution(tmp_path):
    """Rows written by releases 1 and 2 stay as written and read at release 3's shape."""
    out = run("schema_evolution.py", cwd=tmp_path)
    assert '2. MoneyDeposited v1 {"amount":"100.00","note":"opening deposit"}' in out
    assert "1. AccountOpened: owner ada" in out
    assert "2. MoneyDeposited: 100.00 EUR (opening deposit), booked when recorded" in out
    assert "3. MoneyDeposited: 20.00 CHF (birthday), booked when recorded" in out
    assert "4. MoneyDeposited: 5 EUR (refund), booked 2024-01-31" in out
    assert "verified 4 events: 4 load, 0 fail" in out


def test_async_bank(tmp_path):
    """Concurrent tasks deposit, retry conflicts and read their writes from a live projection."""
    out = run("async_bank.py", str(tmp_path / "bank.db"), cwd=tmp_path)
    assert re.search(r"^60 deposits by 3 tasks, \d+ conflicts retried$", out, re.MULTILINE)
    assert "ada: 26.25 after 21 deposits; read model says 26.25" in out
    assert "linus: 22.50 after 18 deposits; read model says 22.50" in out
    assert "read model at position 63 of 63, lag 0" in out
    assert out.endswith("read model equals the accounts: yes\n")


TRANSFERS_OUTPUT = """\
ada -> grace, 30: completed
grace -> ada, 500: failed: account grace holds 50, not 500
ada -> linus, 20: failed: the target account is closed; refunded
ada holds 70
grace holds 80
linus holds 10
the chain of ada -> linus:
  TransferRequested in transfer-t3
  AccountDebited in account-ada, caused by request
  DebitRefunded in account-ada, caused by AccountDebited
  TransferFailed in transfer-t3, caused by DebitRefunded
"""


def test_transfers_on_sqlite(tmp_path):
    """A process manager completes a transfer, fails one at once, compensates a third."""
    assert run("transfers.py", cwd=tmp_path) == TRANSFERS_OUTPUT


def test_transfers_in_memory(tmp_path):
    """The same chain of reactions on the in-memory store."""
    assert run("transfers.py", "memory://", cwd=tmp_path) == TRANSFERS_OUTPUT


def test_transfers_on_postgres(tmp_path, schemas):
    """The same chain of reactions on PostgreSQL."""
    schemas.append(new_schema())
    url = f"{DSN}?schema={schemas[-1]}"
    assert run("transfers.py", url, cwd=tmp_path) == TRANSFERS_OUTPUT


class FlightRun(NamedTuple):
    """What a run of the flight-booking service printed, and where it said its data is."""

    out: str
    place: str


@pytest.fixture(scope="module", name="flights", params=["sqlite", "postgresql"])
def _flights(request, tmp_path_factory):
    """One short run of the flight-booking service, on an SQLite file or a PostgreSQL schema."""
    folder = tmp_path_factory.mktemp("flights")
    if request.param == "sqlite":
        out = run("flight_booking", "--short", "--store", "sqlite:///booked.db", cwd=folder)
        yield FlightRun(out, "booked.db")
        return
    require_server()
    schema = new_schema()
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        url = f"{DSN}?schema={schema}"
        out = run("flight_booking", "--short", "--store", url, cwd=folder)
        yield FlightRun(out, f"schema {schema} of ")
    finally:
        drop_schemas([schema])


def test_flight_booking_sells_no_seat_twice(flights):
    """Booking processes competing for seats never sell one twice, nor too many of a fare."""
    assert "double-booked seats: 0" in flights.out
    assert "overbooked fare classes: 0" in flights.out
    assert "flights loaded from snapshots equal full replays: 4 of 4" in flights.out


def test_flight_booking_read_models_equal_the_fold_of_the_events(flights):
    """Every read model kept by the projections equals a plain fold of the stored events."""
    assert re.search(
        r"read models equal the fold of [\d,]+ events:\n +"
        r"seat map yes, search yes, passenger bookings yes\n",
        flights.out,
    )
    assert re.search(r"searches +[\d,]+: .*, 0 failed", flights.out)


def test_flight_booking_rebuilds_the_search_while_it_serves(flights):
    """The fixed search is rebuilt and swapped in; no search fails or sees it half built."""
    assert re.search(r"version 1 advertises a sold-out fare on [1-4] of 4 flights", flights.out)
    assert "failed 0, half-built 0" in flights.out
    assert "rebuilt search equals the fold with the fixed rule: yes" in flights.out
    assert f"the events and read models are in {flights.place}" in flights.out


def test_flight_booking_names_the_stores_it_cannot_run_on(tmp_path):
    """A store without tables for the read models is refused before anything runs."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "flight_booking"), "--store", "memory://"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert (result.returncode, list(tmp_path.iterdir())) == (1, [])
    assert "memory:// stores keep no tables for the read models" in result.stderr


def test_flight_booking_leaves_a_schema_it_did_not_fill_alone(tmp_path, schemas):
    """The example refuses a PostgreSQL schema that holds a table it did not write."""
    schemas.append(new_schema())
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schemas[-1]}"')
        conn.execute(f'CREATE TABLE "{schemas[-1]}".customers (name TEXT)')
    url = f"{DSN}?schema={schemas[-1]}"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "flight_booking"), "--store", url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    with psycopg.connect(DSN) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schemas[-1],)
        ).fetchall()
    assert (result.returncode, tables) == (1, [("customers",)])
    assert "holds tables this example did not write" in result.stderr


def test_cqrs_over_nats(tmp_path):
    """A read service in another process builds seat availability from the relayed stream."""
    from tests.broker_support import NATS_URL, require_nats  # noqa: PLC0415

    require_nats()
    out = run("cqrs_over_nats.py", NATS_URL, cwd=tmp_path)
    assert "write service: appended bookings up to position 22" in out
    assert re.search(r"^relay: published 22 events to FLIGHTS_\w+, lag 0$", out, re.MULTILINE)
    assert "read service: applied up to position 22, lag 0" in out
    assert "read service: LX318 has 3 of 12 seats free" in out
    assert "read service: LX319 has 3 of 12 seats free" in out
    assert out.endswith("read model equals the fold of the events: yes\n")

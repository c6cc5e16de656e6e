"""Every example runs to completion and prints what it promises."""

import pathlib
import subprocess
import sys

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

"""The mirror process manager and its fault injection, shared by tests and worker processes."""

from decimal import Decimal

from eventkit import ProcessManager, RetryOnError
from tests.bank import MoneyDeposited, MoneyWithdrawn


class Crash(BaseException):
    """The process dies here: nothing catches it, as nothing survives a SIGKILL."""


class Faults:
    """Where to crash or fail: the handler's call number, and at which point of it."""

    def __init__(self, plan=()):
        self.plan = dict(plan)
        self.calls = 0
        self.crash_before_commit = False

    def at(self, point):
        wanted = self.plan.get(self.calls)
        if wanted != point:
            return
        del self.plan[self.calls]
        if point == "commit":
            self.crash_before_commit = True
        elif point == "fail":
            raise RuntimeError("a handler failure, retried by the policy")
        else:
            raise Crash(point)


class Mirror(ProcessManager):
    """For each deposit, a credit in the mirror account and a line in the audit stream."""

    name = "mirror"
    event_types = (MoneyDeposited,)
    error_policy = RetryOnError(attempts=3, delay=0)

    def __init__(self, faults=None):
        self.faults = faults or Faults()

    def handle(self, recorded, process):
        faults = self.faults
        faults.at("before")
        process.append(f"mirror-{recorded.stream_id}", [MoneyWithdrawn(recorded.event.amount)])
        faults.at("between")
        audit = process.read_stream("audit")
        process.append("audit", [MoneyWithdrawn(Decimal(1))], expected_version=len(audit))
        faults.at("after")
        faults.at("fail")
        faults.at("commit")
        faults.calls += 1

"""Projections and process managers, fed from the global log by their runners."""

from eventkit._projections._policies import ErrorPolicy, ParkOnError, RetryOnError, StopOnError
from eventkit._projections._process import ProcessContext, ProcessManager
from eventkit._projections._process_runner import ProcessManagerRunner
from eventkit._projections._process_runner_async import AsyncProcessManagerRunner
from eventkit._projections._projection import Projection
from eventkit._projections._runner import ProjectionRunner
from eventkit._projections._runner_async import AsyncProjectionRunner
from eventkit._projections._status import ProjectionState, ProjectionStatus
from eventkit._projections._subscriber import Subscriber
from eventkit._projections._subscriber_async import AsyncSubscriber
from eventkit._projections._subscriber_runner import SubscriberRunner
from eventkit._projections._subscriber_runner_async import AsyncSubscriberRunner

__all__ = [
    "AsyncProcessManagerRunner",
    "AsyncProjectionRunner",
    "AsyncSubscriber",
    "AsyncSubscriberRunner",
    "ErrorPolicy",
    "ParkOnError",
    "ProcessContext",
    "ProcessManager",
    "ProcessManagerRunner",
    "Projection",
    "ProjectionRunner",
    "ProjectionState",
    "ProjectionStatus",
    "RetryOnError",
    "StopOnError",
    "Subscriber",
    "SubscriberRunner",
]

"""The runner's pure decisions: batch targets, error policies, lag, rates, progress."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventkit import ParkOnError, RetryOnError, StopOnError
from eventkit._projections._plan import RateMeter, batch_target, checkpoint_before, lag_seconds
from eventkit._projections._policies import Action, next_action
from eventkit._projections._progress import ProgressBar, render_progress


class TestBatchTarget:
    def test_a_full_batch_ends_at_its_last_event(self):
        """A batch as long as the batch size may be followed by more: stop at its end."""
        assert batch_target(10, [12, 15, 19], 3, 40) == 19

    def test_a_short_batch_moves_to_the_head(self):
        """A short batch means no wanted events remain before the head read earlier."""
        assert batch_target(10, [12, 15], 3, 40) == 40

    def test_an_empty_batch_moves_to_the_head(self):
        """With none of the projection's events left, the checkpoint skips to the head."""
        assert batch_target(10, [], 100, 40) == 40

    def test_events_newer_than_the_head_are_not_skipped(self):
        """An event appended after the head was read still counts as the batch's end."""
        assert batch_target(10, [12, 45], 3, 40) == 45

    @given(
        start=st.integers(0, 100),
        gaps=st.lists(st.integers(1, 5), max_size=8),
        batch_size=st.integers(1, 10),
        extra=st.integers(0, 20),
    )
    def test_the_target_never_goes_back_nor_skips_a_read_event(
        self, start, gaps, batch_size, extra
    ):
        """The target is at least the start and at least every event of the batch."""
        positions = []
        for gap in gaps[:batch_size]:
            positions.append((positions[-1] if positions else start) + gap)
        head = (positions[-1] if positions else start) + extra
        target = batch_target(start, positions, batch_size, head)
        assert target >= max([start, *positions])

    def test_checkpoint_before_leaves_the_event_to_do(self):
        """The checkpoint before an event is the position just below it."""
        assert checkpoint_before(7) == 6


class TestErrorPolicies:
    def test_stop_stops(self):
        """StopOnError stops at once."""
        assert next_action(StopOnError(), 0) == (Action.STOP, 0.0)

    def test_park_parks(self):
        """ParkOnError parks at once."""
        assert next_action(ParkOnError(), 0) == (Action.PARK, 0.0)

    def test_retry_retries_with_growing_pauses_then_stops(self):
        """RetryOnError retries after each of its pauses, then stops."""
        policy = RetryOnError(attempts=3, delay=0.5, factor=2)
        actions = [next_action(policy, done) for done in range(4)]
        assert actions == [
            (Action.RETRY, 0.5),
            (Action.RETRY, 1.0),
            (Action.RETRY, 2.0),
            (Action.STOP, 0.0),
        ]

    def test_retry_can_fall_back_to_parking(self):
        """With then=ParkOnError(), exhausted retries park the event."""
        assert next_action(RetryOnError(attempts=1, then=ParkOnError()), 1) == (Action.PARK, 0.0)

    def test_pauses_are_capped(self):
        """No pause is longer than max_delay."""
        policy = RetryOnError(attempts=4, delay=1, factor=10, max_delay=50)
        assert policy.delays == (1, 10, 50, 50)

    @pytest.mark.parametrize(
        ("arguments", "error"),
        [
            ({"attempts": 0}, ValueError),
            ({"attempts": 1.5}, ValueError),
            ({"delay": -1}, ValueError),
            ({"factor": True}, ValueError),
            ({"then": RetryOnError()}, TypeError),
        ],
    )
    def test_bad_retry_settings_are_refused(self, arguments, error):
        """A retry policy with an out-of-range setting raises at once."""
        with pytest.raises(error):
            RetryOnError(**arguments)


class TestLagAndRate:
    def test_no_waiting_event_means_no_lag(self):
        """Caught up, the lag is zero."""
        assert lag_seconds(datetime.now(UTC), None) == 0.0

    def test_lag_is_the_age_of_the_oldest_waiting_event(self):
        """The lag is how long the oldest unhandled event has waited."""
        now = datetime(2024, 1, 1, 12, tzinfo=UTC)
        assert lag_seconds(now, now - timedelta(seconds=90)) == 90.0

    def test_lag_is_never_negative(self):
        """An event stamped after now (clock skew between machines) means no lag."""
        now = datetime(2024, 1, 1, 12, tzinfo=UTC)
        assert lag_seconds(now, now + timedelta(seconds=5)) == 0.0

    def test_rate_counts_events_per_second_in_the_window(self):
        """The rate is the events in the window over the time it spans."""
        meter = RateMeter(window=10)
        for second in range(5):
            meter.add(100.0 + second, 20)
        assert meter.rate(104.0) == 25.0

    def test_old_samples_leave_the_window(self):
        """Samples older than the window no longer count."""
        meter = RateMeter(window=10)
        meter.add(0.0, 1000)
        meter.add(15.0, 30)
        assert meter.rate(20.0) == 3.0

    def test_an_idle_meter_reads_zero(self):
        """A meter with no samples, or none in the window, reads zero."""
        meter = RateMeter(window=1)
        before = meter.rate(5.0)
        meter.add(5.0, 10)
        assert (before, meter.rate(5.0), meter.rate(50.0)) == (0.0, 0.0, 0.0)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


class TestProgress:
    def test_a_line_shows_bar_counts_and_rate(self):
        """A progress line shows the bar, positions done of total, percent and rate."""
        line = render_progress("balances", 250, 1000, 1234.4)
        assert line == "balances [######------------------] 250/1,000  25% 1,234 events/s"

    def test_nothing_to_do_shows_as_done(self):
        """With a total of zero the bar is full."""
        assert "[########################]" in render_progress("p", 0, 0, 0)

    def test_a_quiet_bar_writes_nothing(self):
        """A bar without a stream stays silent."""
        bar = ProgressBar("p", None)
        bar.update(5, 10, 5)
        bar.finish(10)
        assert bar.out is None

    def test_updates_are_throttled(self):
        """Updates closer together than the interval are not drawn."""
        times = iter([0.0, 0.1, 0.2, 1.0, 1.0])
        out = io.StringIO()
        bar = ProgressBar("p", out, interval=0.5, clock=lambda: next(times))
        for done in (1, 2, 3, 4):
            bar.update(done, 10, 1)
        assert [line.split()[2] for line in out.getvalue().splitlines()] == ["1/10", "4/10"]

    def test_a_terminal_redraws_one_line(self):
        """On a terminal each update redraws the line, and finishing ends it."""
        out = _Terminal()
        bar = ProgressBar("p", out, interval=0, clock=lambda: 1.0)
        bar.update(5, 10, 5)
        bar.finish(10)
        assert out.getvalue().count("\r") == 2
        assert out.getvalue().endswith("10/10 100% 0 events/s\n")

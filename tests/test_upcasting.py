"""Upcasters: registration, chain checks at start-up, and upcasting on read."""

import functools
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import attrs
import pytest
from hypothesis import given

from eventkit import (
    EventRegistry,
    InMemoryEventStore,
    NewEvent,
    RegistrationError,
    RetiredEvent,
    SerializationError,
    UnknownEventType,
    UpcastContext,
    UpcastError,
    check_upcasters,
    default_registry,
    event,
    upcaster,
)
from eventkit import _upcasting as eventkit_upcasting
from eventkit.backends import Codec, EventRecord, NewRecord, UpcastChain, UpcastChains, UpcastStep
from tests import evolution, records
from tests.strategies import any_text, exact_decimals

RECORDED_AT = datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
# Upcasters that read the envelope see this recording time unless a test says otherwise.
stored = functools.partial(records.stored, recorded_at=RECORDED_AT)


@pytest.fixture(name="registry")
def _registry():
    return EventRegistry()


def raw(event_type: str, schema_version: int, data: str) -> EventRecord:
    return stored(NewRecord(uuid.uuid4(), event_type, schema_version, data, "{}"))


def written_by_release_1(item, **kwargs) -> EventRecord:
    """Return *item* as release 1 of the ledger would have stored it."""
    return stored(Codec(evolution.release_1).encode(item), **kwargs)


def versioned(registry, name, version, **kwargs):
    """Register a fresh attrs class under *name* at *version*; return it."""

    @attrs.frozen
    class Thing:
        x: int = 0

    return event(name, version=version, registry=registry, **kwargs)(Thing)


def identity(data):
    return data


def step(registry, name, from_version, func=identity, **kwargs):
    return upcaster(name, from_version, registry=registry, **kwargs)(func)


class TestUpcasterDecorator:
    def test_registers_a_step_from_one_version_to_the_next(self, registry):
        """@upcaster(name, n) registers the function as the step from version n of name."""

        @upcaster("Thing", 1, registry=registry)
        def thing_v1_to_v2(data):
            return data

        assert registry.upcast_step("Thing", 1) == UpcastStep("Thing", 1, thing_v1_to_v2, "Thing")

    def test_returns_the_function_unchanged(self, registry):
        """The decorator registers the function and gives it back as it was."""
        assert upcaster("Thing", 1, registry=registry)(identity) is identity

    def test_fills_the_default_registry_when_none_is_given(self):
        """Without a registry argument, @upcaster fills default_registry."""
        versioned(default_registry, "tests.UpcasterProbe", 2)

        @upcaster("tests.UpcasterProbe", 1)
        def probe_v1_to_v2(data):
            return data

        assert default_registry.upcast_step("tests.UpcasterProbe", 1).func is probe_v1_to_v2

    def test_context_and_rename_are_recorded_on_the_step(self, registry):
        """to= and context=True are kept on the step, for the codec to follow."""
        step(registry, "Old", 3, to="New", context=True)
        found = registry.upcast_step("Old", 3)
        assert (found.func, found.to, found.context) == (identity, "New", True)
        assert found.describe() == f"'Old' v3 -> 'New' v4 ({__name__}.identity)"

    def test_a_second_upcaster_for_one_version_is_refused(self, registry):
        """Two upcasters for (name, from_version) raise RegistrationError naming both."""

        def first(data):
            return data

        def second(data):
            return data

        step(registry, "Thing", 1, first)
        with pytest.raises(RegistrationError, match=r"'Thing'.*version 1.*first.*second"):
            step(registry, "Thing", 1, second)
        assert registry.upcast_step("Thing", 1).func is first

    def test_the_same_function_defined_again_replaces_the_old(self, registry):
        """A function with the same qualified name (a module reload) replaces the step."""
        defined = []
        for _ in range(2):

            def thing_v1_to_v2(data):
                return data

            defined.append(step(registry, "Thing", 1, thing_v1_to_v2))
        assert registry.upcast_step("Thing", 1).func is defined[1]

    @pytest.mark.parametrize("from_version", [0, -1, True, "1"])
    def test_refuses_bad_versions(self, registry, from_version):
        """from_version must be an integer >= 1."""
        with pytest.raises(RegistrationError, match="from_version must be an integer >= 1"):
            step(registry, "Thing", from_version)

    @pytest.mark.parametrize(("name", "to"), [("", None), (" x", None), ("Thing", "")])
    def test_refuses_bad_names(self, registry, name, to):
        """The type name and the new name must be non-empty, unpadded strings."""
        with pytest.raises(RegistrationError, match="event type name must be a non-empty"):
            step(registry, name, 1, to=to)

    def test_refuses_what_cannot_be_called(self, registry):
        """Only a callable can be an upcaster."""
        with pytest.raises(RegistrationError, match="not callable"):
            registry.add_upcaster("not a function", "Thing", 1)


class TestRetire:
    def test_a_retired_name_is_known_as_retired(self, registry):
        """retire(name) marks the name; retiring it twice is harmless."""
        registry.retire("Gone")
        registry.retire("Gone")
        assert (registry.is_retired("Gone"), registry.is_retired("Other")) == (True, False)

    def test_a_registered_name_cannot_be_retired(self, registry):
        """Retiring a name that a class still uses raises RegistrationError naming it."""
        versioned(registry, "Alive", 1)
        with pytest.raises(RegistrationError, match="cannot retire event type 'Alive'"):
            registry.retire("Alive")

    def test_a_retired_name_cannot_be_registered(self, registry):
        """Registering a class under a retired name raises RegistrationError."""
        registry.retire("Gone")
        with pytest.raises(RegistrationError, match="'Gone': that name is retired"):
            versioned(registry, "Gone", 1)

    def test_a_bad_name_cannot_be_retired(self, registry):
        """Only a valid type name can be retired."""
        with pytest.raises(RegistrationError, match="cannot retire"):
            registry.retire("")


class TestOldestVersion:
    def test_defaults_to_one(self, registry):
        """A type's oldest stored version is 1 unless declared."""
        assert registry.by_class(versioned(registry, "Thing", 3)).oldest_version == 1

    @pytest.mark.parametrize("oldest", [0, 4, True])
    def test_must_lie_between_one_and_the_version(self, registry, oldest):
        """oldest_version outside 1..version is refused at registration."""
        with pytest.raises(RegistrationError, match="oldest_version must be an integer from 1"):
            versioned(registry, "Thing", 3, oldest_version=oldest)


class TestCheck:
    def test_a_complete_chain_passes(self, registry):
        """Upcasters from every version up to the current one: check() raises nothing."""
        versioned(registry, "Thing", 3)
        step(registry, "Thing", 2)
        step(registry, "Thing", 1)
        assert check_upcasters(registry) is None

    def test_a_missing_link_names_the_type_and_versions(self, registry):
        """v1 and v3 known, no v1 -> v2: check() names the type and the missing step."""
        versioned(registry, "MoneyDeposited", 3)
        step(registry, "MoneyDeposited", 2)
        with pytest.raises(RegistrationError) as info:
            check_upcasters(registry)
        assert str(info.value) == (
            "upcaster chains are broken:\n"
            "- event type 'MoneyDeposited': no upcaster from version 1 to version 2, so "
            "events stored at version 1 cannot reach the current version 3 (register "
            "@upcaster('MoneyDeposited', 1), or raise oldest_version if no such events "
            "are stored)"
        )

    def test_a_bumped_version_without_any_upcaster_fails(self, registry):
        """A type at version 2 with no upcaster from version 1 fails the check."""
        versioned(registry, "Thing", 2)
        with pytest.raises(RegistrationError, match="'Thing': no upcaster from version 1 to"):
            check_upcasters(registry)

    def test_oldest_version_excuses_older_versions(self, registry):
        """Versions below oldest_version need no upcasters (after a migration)."""
        versioned(registry, "Thing", 3, oldest_version=3)
        assert check_upcasters(registry) is None

    def test_an_upcaster_from_the_current_version_fails(self, registry):
        """An upcaster from a version at or past the current one is a mistake, named."""
        versioned(registry, "Thing", 2)
        step(registry, "Thing", 1)
        step(registry, "Thing", 2)
        with pytest.raises(RegistrationError, match=r"'Thing' v2 -> 'Thing' v3 .* starts at"):
            check_upcasters(registry)

    def test_an_upcaster_for_a_retired_type_fails(self, registry):
        """Retired events are read as stored, so an upcaster for one is refused."""
        registry.retire("Gone")
        step(registry, "Gone", 1)
        with pytest.raises(RegistrationError, match="'Gone' is retired, but upcaster"):
            check_upcasters(registry)

    def test_a_rename_to_an_unknown_name_fails(self, registry):
        """An upcaster renaming to a name nobody registered is named with its step."""
        step(registry, "Old", 1, to="Nowhere")
        with pytest.raises(RegistrationError, match="no event class is registered under 'Nowhere'"):
            check_upcasters(registry)

    def test_a_rename_to_a_retired_name_fails(self, registry):
        """Renaming into a retired type is refused: the old name should be retired too."""
        registry.retire("Gone")
        step(registry, "Old", 1, to="Gone")
        with pytest.raises(RegistrationError, match="'Gone', which is retired; retire 'Old'"):
            check_upcasters(registry)

    def test_a_rename_from_a_registered_name_fails(self, registry):
        """Old versions of a registered type stay that type: renaming them is refused."""
        versioned(registry, "Kept", 2)
        versioned(registry, "Other", 2, oldest_version=2)
        step(registry, "Kept", 1, to="Other")
        with pytest.raises(RegistrationError, match="renames 'Kept', but 'Kept' is still"):
            check_upcasters(registry)

    def test_a_rename_landing_past_the_current_version_fails(self, registry):
        """A rename into a type must land at or below that type's current version."""
        versioned(registry, "New", 1)
        step(registry, "Old", 1, to="New")
        with pytest.raises(
            RegistrationError, match="lead to version 2 of 'New', past its current version 1"
        ):
            check_upcasters(registry)

    def test_every_problem_is_listed(self, registry):
        """check() reports all problems at once, one per line."""
        versioned(registry, "A", 2)
        versioned(registry, "B", 2)
        with pytest.raises(RegistrationError) as info:
            check_upcasters(registry)
        assert str(info.value).count("\n- ") == 2

    def test_registration_order_does_not_matter(self, registry):
        """Upcasters registered before their event class check out the same."""
        step(registry, "Thing", 1)
        versioned(registry, "Thing", 2)
        assert check_upcasters(registry) is None

    def test_building_a_store_checks_the_registry(self, registry):
        """A store is not built on a broken registry: the error comes at start-up."""
        versioned(registry, "Thing", 2)
        with pytest.raises(RegistrationError, match="'Thing'"):
            InMemoryEventStore(registry=registry)


class TestChain:
    def test_a_current_version_needs_no_steps(self):
        """Data stored at the current version has an empty chain."""
        chain = UpcastChains(evolution.release_3).chain("ledger.MoneyDeposited", 3)
        assert chain == UpcastChain((), "ledger.MoneyDeposited", 3)

    def test_a_chain_follows_steps_in_order(self):
        """From version 1, the chain runs v1 -> v2 -> v3."""
        chain = UpcastChains(evolution.release_3).chain("ledger.MoneyDeposited", 1)
        assert [s.func for s in chain.steps] == [
            evolution.money_deposited_v1_to_v2,
            evolution.money_deposited_v2_to_v3,
        ]

    def test_a_chain_follows_a_rename(self):
        """A renamed type's chain ends at the new name, at the version it lands on."""
        chain = UpcastChains(evolution.release_3).chain("ledger.AccountCreated", 1)
        assert (chain.name, chain.version, chain.problem) == ("ledger.AccountOpened", 2, None)

    def test_a_new_upcaster_mends_a_cached_chain(self, registry):
        """Chains are rebuilt after a registration, so a late upcaster is used."""
        versioned(registry, "Thing", 2)
        chains = UpcastChains(registry)
        assert chains.chain("Thing", 1).problem is not None
        step(registry, "Thing", 1)
        assert chains.chain("Thing", 1).problem is None

    def test_a_chain_built_during_a_registration_is_not_kept(self, registry, monkeypatch):
        """A chain that another thread's registration made stale is rebuilt next time."""
        versioned(registry, "Thing", 2)
        build = eventkit_upcasting.build_chain

        def build_while_registering(source, name, version):
            stale = build(source, name, version)
            step(registry, "Thing", 1)  # lands between building and caching
            return stale

        chains = UpcastChains(registry)
        monkeypatch.setattr(eventkit_upcasting, "build_chain", build_while_registering)
        assert chains.chain("Thing", 1).problem is not None
        monkeypatch.setattr(eventkit_upcasting, "build_chain", build)
        assert chains.chain("Thing", 1).problem is None

    def test_old_names_are_found_through_renames(self, registry):
        """old_names lists every name renamed into a type, also through other renames."""
        step(registry, "Oldest", 1, to="Old")
        step(registry, "Old", 2, to="New")
        step(registry, "Other", 1, to="New")
        assert registry.old_names("New") == {"Oldest", "Old", "Other"}


class TestUpcastOnRead:
    @given(amount=exact_decimals, note=any_text)
    def test_generated_v1_payloads_load_at_v3_keeping_their_fields(self, amount, note):
        """Any v1 deposit loads as v3 with its amount, its note as memo, and EUR."""
        record = written_by_release_1(evolution.MoneyDepositedV1(amount, note))
        loaded = Codec(evolution.release_3).decode(record).event
        assert loaded == evolution.MoneyDeposited(
            evolution.Money(amount, "EUR"), deposited_at=RECORDED_AT, memo=note
        )
        assert str(loaded.amount.value) == str(amount)

    def test_a_current_event_runs_no_upcaster(self, registry):
        """Data at the current version is structured directly, even if upcasters would fail."""
        thing = versioned(registry, "Thing", 2)

        def broken(data):
            raise AssertionError

        step(registry, "Thing", 1, broken)
        assert Codec(registry).decode(raw("Thing", 2, '{"x":5}')).event == thing(5)

    def test_a_context_upcaster_sees_the_envelope(self, registry):
        """context=True passes the event's stream, version, id, time and metadata."""
        seen = []
        versioned(registry, "Thing", 2)

        def thing_v1_to_v2(data, context):
            seen.append(context)
            return data

        step(registry, "Thing", 1, thing_v1_to_v2, context=True)
        new = NewRecord(uuid.uuid4(), "Thing", 1, '{"x":1}', '{"user":"ada"}')
        Codec(registry).decode(stored(new, stream_id="t", version=4))
        assert seen == [UpcastContext("t", 4, new.event_id, RECORDED_AT, {"user": "ada"})]

    def test_the_context_metadata_is_read_only(self, registry):
        """An upcaster cannot change the metadata the recorded event carries."""
        context = UpcastContext("s", 1, uuid.uuid4(), RECORDED_AT, {"user": "ada"})
        with pytest.raises(TypeError):
            context.metadata["user"] = "eve"  # type: ignore[index]

    def test_an_upcaster_that_raises_names_stream_version_type_and_upcaster(self, registry):
        """A failing upcaster gives UpcastError with its place and name, cause chained."""
        versioned(registry, "Thing", 2)

        def thing_v1_to_v2(data):
            return {"x": data["missing"]}

        step(registry, "Thing", 1, thing_v1_to_v2)
        record = stored(NewRecord(uuid.uuid4(), "Thing", 1, "{}", "{}"), stream_id="t", version=7)
        with pytest.raises(UpcastError) as info:
            Codec(registry).decode(record)
        qualname = f"{__name__}.{thing_v1_to_v2.__qualname__}"
        assert (info.value.stream_id, info.value.version, info.value.event_type) == (
            "t",
            7,
            "Thing",
        )
        assert (info.value.upcaster, info.value.from_version) == (qualname, 1)
        assert str(info.value) == (
            f"stream 't', version 7, event type 'Thing': upcaster 'Thing' v1 -> 'Thing' v2 "
            f"({qualname}) failed: KeyError: 'missing'"
        )
        assert isinstance(info.value.__cause__, KeyError)

    def test_an_upcaster_returning_a_non_dict_is_named(self, registry):
        """An upcaster must return a dict: anything else is an UpcastError naming it."""
        versioned(registry, "Thing", 2)
        step(registry, "Thing", 1, lambda data: [data])
        with pytest.raises(UpcastError, match="returned list, not a dict") as info:
            Codec(registry).decode(raw("Thing", 1, "{}"))
        assert info.value.upcaster.endswith("<lambda>")

    def test_a_newer_stored_version_is_refused_not_guessed(self):
        """A v4 deposit (written by newer code, then rolled back) raises UpcastError."""
        with pytest.raises(UpcastError, match="newer than the current version 3") as info:
            Codec(evolution.release_3).decode(raw("ledger.MoneyDeposited", 4, "{}"))
        assert (info.value.from_version, info.value.event_type) == (4, "ledger.MoneyDeposited")

    def test_a_renamed_type_loads_as_the_new_class(self):
        """A stored AccountCreated loads as AccountOpened, under the new type name."""
        record = written_by_release_1(evolution.AccountCreated("ada"))
        recorded = Codec(evolution.release_3).decode(record)
        assert (recorded.event_type, recorded.event) == (
            "ledger.AccountOpened",
            evolution.AccountOpened("ada", "branch"),
        )

    def test_an_old_name_at_an_unknown_version_says_which_versions_are_known(self):
        """An old name stored at a version no upcaster reads is UnknownEventType, explained."""
        with pytest.raises(UnknownEventType, match=r"upcasters read schema versions \[1\], not 2"):
            Codec(evolution.release_3).decode(raw("ledger.AccountCreated", 2, "{}"))

    def test_a_chain_to_nowhere_is_an_upcast_error(self, registry):
        """When an unchecked chain leads to an unregistered name, reading says so."""
        step(registry, "Old", 1, to="Nowhere")
        with pytest.raises(UpcastError, match="no event class is registered under 'Nowhere'"):
            Codec(registry).decode(raw("Old", 1, "{}"))

    def test_a_retired_type_reads_as_a_placeholder_with_its_data(self):
        """A stored event of a retired type reads as RetiredEvent carrying the stored data."""
        record = written_by_release_1(evolution.DailyLimitSet(Decimal(500)))
        recorded = Codec(evolution.release_3).decode(record)
        assert (recorded.event_type, recorded.event) == (
            "ledger.DailyLimitSet",
            RetiredEvent("ledger.DailyLimitSet", 1, {"limit": "500"}),
        )

    def test_a_retired_event_with_malformed_data_is_a_serialization_error(self):
        """A retired event's data is still decoded, so broken JSON is reported."""
        with pytest.raises(SerializationError, match="not valid JSON"):
            Codec(evolution.release_3).decode(raw("ledger.DailyLimitSet", 1, "{"))

    def test_upcasting_leaves_the_stored_record_alone(self):
        """Reading through upcasters changes nothing stored: the same record reads twice."""
        record = written_by_release_1(NewEvent(evolution.MoneyDepositedV1(Decimal(1), "x")))
        before = record.data
        codec = Codec(evolution.release_3)
        assert codec.decode(record) == codec.decode(record)
        assert record.data == before

"""The event decorator and the registry."""

import importlib
import sys
import textwrap

import attrs
import pytest

from eventkit import (
    EventRegistry,
    EventType,
    RegistrationError,
    UnknownEventType,
    default_registry,
    event,
)
from eventkit.testing import contract_registry


@pytest.fixture(name="registry")
def _registry():
    return EventRegistry()


class TestEvent:
    def test_registers_under_name_with_version_one_by_default(self, registry):
        """@event(name) without a version registers version 1."""

        @event("Opened", registry=registry)
        @attrs.frozen
        class Opened:
            owner: str

        assert registry.by_name("Opened") == EventType("Opened", 1, Opened)
        assert registry.by_class(Opened).version == 1

    def test_returns_the_class_unchanged(self, registry):
        """The decorator registers the class and gives it back as it was."""

        @attrs.frozen
        class Opened:
            owner: str

        assert event("Opened", version=3, registry=registry)(Opened) is Opened
        assert registry.by_name("Opened").version == 3

    def test_fills_the_default_registry_when_none_is_given(self):
        """Without a registry argument, @event fills default_registry."""

        @event("tests.DefaultRegistryProbe")
        @attrs.frozen
        class Probe:
            pass

        assert default_registry.by_name("tests.DefaultRegistryProbe").cls is Probe

    def test_refuses_a_class_that_is_not_attrs(self, registry):
        """A plain class raises RegistrationError naming it and suggesting @attrs.frozen."""

        class Plain:
            pass

        with pytest.raises(RegistrationError, match=r"Plain.*attrs"):
            event("Plain", registry=registry)(Plain)

    def test_refuses_decorators_in_the_wrong_order(self, registry):
        """@event below @attrs.frozen sees a plain class and says where to put it."""
        with pytest.raises(RegistrationError, match=r"above @attrs\.frozen"):

            @attrs.frozen
            @event("Backwards", registry=registry)
            class Backwards:
                x: int

    def test_refuses_a_name_used_by_another_class(self, registry):
        """Two classes under one type name is an error at import time."""

        @event("Twice", registry=registry)
        @attrs.frozen
        class First:
            pass

        @attrs.frozen
        class Second:
            pass

        with pytest.raises(RegistrationError, match=r"'Twice'.*First.*Second"):
            event("Twice", version=2, registry=registry)(Second)
        assert registry.by_name("Twice").cls is First

    def test_refuses_one_class_under_two_names(self, registry):
        """A class belongs to one type name."""

        @event("A", registry=registry)
        @attrs.frozen
        class Thing:
            pass

        with pytest.raises(RegistrationError, match="already registered as event type 'A'"):
            event("B", registry=registry)(Thing)
        assert "B" not in registry

    @pytest.mark.parametrize("name", ["", " padded ", 42])
    def test_refuses_bad_names(self, registry, name):
        """Type names must be non-empty strings without surrounding whitespace."""

        @attrs.frozen
        class Thing:
            pass

        with pytest.raises(RegistrationError, match="name"):
            event(name, registry=registry)(Thing)

    @pytest.mark.parametrize("version", [0, -1, True, "2"])
    def test_refuses_bad_versions(self, registry, version):
        """Versions must be integers >= 1."""

        @attrs.frozen
        class Thing:
            pass

        with pytest.raises(RegistrationError, match="version"):
            event("Thing", version=version, registry=registry)(Thing)

    def test_reloading_a_module_replaces_its_classes(self, tmp_path, monkeypatch):
        """importlib.reload re-registers the module's events instead of failing."""
        (tmp_path / "reloaded_events.py").write_text(
            textwrap.dedent(
                """
                import attrs
                from eventkit import event
                from eventkit.testing import contract_registry as registry

                @event("tests.Reloaded", registry=registry)
                @attrs.frozen
                class Reloaded:
                    x: int
                """
            )
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        module = importlib.import_module("reloaded_events")
        first = module.Reloaded
        module = importlib.reload(module)
        assert contract_registry.by_name("tests.Reloaded").cls is module.Reloaded
        assert first not in contract_registry
        del sys.modules["reloaded_events"]


class TestEventRegistry:
    def test_unknown_name_raises_unknown_event_type(self, registry):
        """Looking up a name nobody registered raises UnknownEventType naming it."""
        with pytest.raises(UnknownEventType, match="'Nope'") as info:
            registry.by_name("Nope")
        assert info.value.event_type == "Nope"

    def test_unknown_class_raises_naming_the_class(self, registry):
        """Looking up an unregistered class names the class and the fix."""

        @attrs.frozen
        class Loose:
            pass

        with pytest.raises(UnknownEventType, match=r"Loose.*@eventkit.event"):
            registry.by_class(Loose)

    def test_membership_iteration_and_length(self, registry):
        """A registry knows its names and classes, iterates its entries and has a size."""

        @event("One", registry=registry)
        @attrs.frozen
        class One:
            pass

        assert ("One" in registry, One in registry, "Two" in registry) == (True, True, False)
        assert [entry.name for entry in registry] == ["One"]
        assert len(registry) == 1
        assert registry.get("Two") is None
        assert repr(registry) == "<EventRegistry with 1 event types>"

    def test_stored_names_resolve_names_and_classes(self, registry):
        """stored_names takes names as given, classes by name, and one item alone."""

        @event("One", registry=registry)
        @attrs.frozen
        class One:
            pass

        assert registry.stored_names([One, "Other"]) == frozenset({"One", "Other"})
        assert registry.stored_names(One) == frozenset({"One"})
        with pytest.raises(UnknownEventType):
            registry.stored_names([int])

    def test_registries_are_independent(self, registry):
        """A class registered in one registry is unknown to another."""

        @event("Local", registry=registry)
        @attrs.frozen
        class Local:
            pass

        assert "Local" not in EventRegistry()

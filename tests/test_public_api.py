"""The public API is curated: sorted __all__, public names only, every name documented."""

import pathlib
import types
from importlib.metadata import version

import pytest

import eventkit
import eventkit.backends
import eventkit.exceptions
import eventkit.testing

DOCS = pathlib.Path(__file__).parent.parent / "docs" / "reference"


FRONTS = [eventkit, eventkit.backends]


@pytest.mark.parametrize("module", FRONTS, ids=lambda m: m.__name__)
def test_all_is_sorted_and_unique(module):
    """__all__ is sorted (constants first, as ruff sorts) and has no duplicates."""
    assert module.__all__ == sorted(set(module.__all__), key=lambda n: (not n.isupper(), n))


@pytest.mark.parametrize("module", FRONTS, ids=lambda m: m.__name__)
def test_all_lists_exactly_the_public_names(module):
    """Every non-underscore name in a public module's namespace is in __all__, and vice versa."""
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not (isinstance(value, types.ModuleType) and name != "exceptions")
    }
    public -= {"annotations", "Any", "importlib"}  # imported for the module itself
    lazy = set(getattr(module, "_LAZY", ()))  # named on first use (optional dependencies)
    assert public | lazy == set(module.__all__)


@pytest.mark.parametrize("module", FRONTS, ids=lambda m: m.__name__)
def test_public_classes_claim_the_public_module(module):
    """Reprs and docs say eventkit.Repository, not eventkit._repository.Repository."""
    for name in module.__all__:
        claimed = getattr(getattr(module, name), "__module__", module.__name__)
        assert not claimed.startswith("eventkit._"), name


def test_the_fronts_do_not_share_names():
    """Each public name lives in one place: applications' or backend authors'."""
    assert set(eventkit.__all__) & set(eventkit.backends.__all__) == set()


def test_every_public_name_is_in_the_api_reference():
    """The reference pages mention every name of eventkit, eventkit.backends and testing."""
    text = (DOCS / "api.md").read_text()
    backends = (DOCS / "backends.md").read_text()
    errors = set(eventkit.exceptions.__all__) | {"exceptions"}  # documented in exceptions.md
    missing = [n for n in eventkit.__all__ if f"eventkit.{n}" not in text and n not in errors]
    missing += [n for n in eventkit.testing.__all__ if f"eventkit.testing.{n}" not in text]
    missing += [n for n in eventkit.backends.__all__ if f"eventkit.backends.{n}" not in backends]
    assert missing == []


def test_the_exceptions_page_documents_the_whole_module():
    """docs/reference/exceptions.md documents eventkit.exceptions with all its members."""
    assert (
        ".. automodule:: eventkit.exceptions\n   :members:" in (DOCS / "exceptions.md").read_text()
    )


def test_every_exception_is_exported_from_the_exceptions_module():
    """eventkit.exceptions.__all__ lists every error class it defines."""
    defined = {
        name
        for name, value in vars(eventkit.exceptions).items()
        if isinstance(value, type) and issubclass(value, Exception)
    }
    assert defined == set(eventkit.exceptions.__all__)


def test_version_is_the_installed_version():
    """eventkit.__version__ comes from the installed package metadata."""
    assert eventkit.__version__ == version("eventkit-es")
    assert "__version__" in dir(eventkit)


def test_unknown_attributes_raise_attribute_error():
    """A missing name raises AttributeError naming it."""
    with pytest.raises(AttributeError, match="no_such_thing"):
        eventkit.no_such_thing  # noqa: B018

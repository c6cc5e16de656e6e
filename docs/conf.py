"""Sphinx configuration for the eventkit docs."""

import doctest
from importlib.metadata import version as _version
from pathlib import Path

project = "eventkit"
author = "The eventkit developers"
copyright = "2026, The eventkit developers"
release = _version("eventkit-es")  # the distribution; the package is eventkit
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    # Diagrams are written in the pages as Graphviz source and drawn by `dot` at build
    # time; `make docs` installs Graphviz when `dot` is missing.
    "sphinx.ext.graphviz",
]
graphviz_output_format = "svg"
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
exclude_patterns = ["_build"]

default_role = "any"
nitpicky = True
# The build runs offline, so there is no intersphinx: names from the standard library and
# from attrs and cattrs are left unlinked instead of failing the nitpicky build.
nitpick_ignore_regex = [
    (r"py:.*", r"(datetime|uuid|decimal|enum|types|typing|typing_extensions|collections\.abc)\..*"),
    (r"py:.*", r"(attrs|attr|cattrs|cattr|sqlite3|psycopg|psycopg_pool|pathlib|os)\..*"),
    (r"py:.*", r"(Decimal|UUID|datetime|Path|Any|Self|Callable|Iterable|Iterator|Mapping)"),
    (r"py:.*", r"(contextlib\.)?AbstractContextManager"),
    (r"py:.*", r"(Sequence|TracebackType|NamedTuple|Protocol|E|T|A|ExpectedVersion)"),
    (r"py:.*", r"(int|str|bytes|bool|float|object|type|tuple|list|dict|frozenset|None)"),
    (r"py:.*", r"(Exception|BaseException|ValueError|TypeError|LookupError)"),
    (r"py:.*", r"eventkit\._.*"),
    # ProcessContext's type for "a Repository or an AsyncRepository", which its docs name.
    (r"py:class", r"_AggregateSource"),
]

# Exception messages in the docs are checked too: Sphinx ignores their detail by default.
doctest_default_flags = doctest.ELLIPSIS | doctest.DONT_ACCEPT_TRUE_FOR_1
# Tutorial pages continue the story of earlier pages with `_replay.replay`.
doctest_path = [str(Path(__file__).parent)]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "furo"
html_title = "eventkit"

"""Each module imports only from the layers above it (see STYLE.md, Layout)."""

import ast
import pathlib

SRC = pathlib.Path(__file__).parent.parent / "src" / "eventkit"

# Layer of each module: a module may import only modules of a lower number.
LAYERS = {
    "exceptions": 0,
    "_acompat": 0,  # the asyncio primitives of the async sources
    "_compat": 0,  # their threading twins, used by the generated sync code
    "_exports": 0,  # how the public modules present their names
    "_envelope": 1,  # what users append and read back
    "_events": 1,  # the registry: event classes and upcaster steps, as plain data
    "_json": 1,  # JSON text, compact and exact
    "_records": 2,  # what backends store and return
    "_upcasting": 3,  # chains of upcasters, built on the registry
    "_rules": 3,  # the append decision and argument checks, pure
    "_converter": 3,  # the cattrs converter: the wire format, read strictly
    "_serialization": 4,  # the codec: the only module that imports cattrs
    "_storage": 3,  # the projection transaction, append listeners, file locks
    "_projection_store": 4,  # the storage contract of projections
    "_store": 5,  # the event store contract and the shared half of backends
    "_aggregate": 5,
    "_snapshots": 6,  # snapshots hold aggregates; the repository takes and reads them
    "_projections": 6,
    "_reports": 0,  # what verify and migrate report: plain data
    "_migration": 6,
    "_repository": 7,
    "_backends": 7,
    "_relay": 7,  # the relay to a broker and the read side fed from it
    "_urls": 8,  # stores named by URL: open_store picks a backend
    "_cli": 9,
    "testing": 8,
    "backends": 9,
    "__init__": 9,
}
# Backends see records, never domain objects or the codec: at run time they import the
# records, the rules, the two store contracts (events and projection storage), the
# exceptions, and each other's shared helpers. Nothing else. (Their constructors name
# the registry and converter types in annotations only, to pass them on to the base.)
BACKEND_MAY_IMPORT = {
    "_records",
    "_rules",
    "_store",
    "_projection_store",
    "_storage",
    "_acompat",  # the primitives their async forms are written with
    "exceptions",
    "_backends",
}


def import_names(path: pathlib.Path, *, typing_only: bool = True) -> list[str]:
    """Return the absolute module names *path* imports; without *typing_only*, runtime ones."""
    tree = ast.parse(path.read_text())
    skipped = set()
    if not typing_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
                skipped.update(id(child) for child in ast.walk(node))
    names = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def imported_eventkit_modules(path: pathlib.Path, *, typing_only: bool = True) -> set[str]:
    """Return the eventkit modules (first component below eventkit) that *path* imports."""
    found = set()
    for name in import_names(path, typing_only=typing_only):
        parts = name.split(".")
        if parts[0] == "eventkit":
            module = parts[1].removesuffix("_async") if len(parts) > 1 else "__init__"
            # A generated twin uses _compat where its source uses _acompat.
            found.add("_acompat" if module == "_compat" else module)
    return found


def layer_of(path: pathlib.Path) -> str:
    relative = path.relative_to(SRC)
    name = relative.parts[0] if len(relative.parts) > 1 else path.stem
    # An async source and its generated sync twin share a layer.
    return name.removesuffix("_async")


def test_every_module_has_a_layer():
    """A new module must be placed in the layering before it can be imported."""
    unplaced = {layer_of(p) for p in SRC.rglob("*.py")} - set(LAYERS)
    assert unplaced == set()


def test_modules_import_only_from_layers_above():
    """No module imports a module of its own or a lower layer."""
    violations = [
        f"{path.relative_to(SRC)} imports {target}"
        for path in SRC.rglob("*.py")
        for target in imported_eventkit_modules(path)
        if target != layer_of(path) and LAYERS[target] >= LAYERS[layer_of(path)]
    ]
    assert violations == []


def test_backends_see_records_not_domain_objects():
    """At run time, backends import only records, rules, the store contracts and exceptions."""
    violations = [
        f"{path.name} imports {target}"
        for path in (SRC / "_backends").rglob("*.py")
        for target in imported_eventkit_modules(path, typing_only=False) - BACKEND_MAY_IMPORT
    ]
    assert violations == []


def test_only_the_codec_imports_cattrs():
    """At run time cattrs is used by the converter and the codec only: the wire format."""
    users = sorted(
        path.name
        for path in SRC.rglob("*.py")
        if any(name.split(".")[0] == "cattrs" for name in import_names(path, typing_only=False))
    )
    assert users == ["_converter.py", "_serialization.py"]

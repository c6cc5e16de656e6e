"""Each module imports only from the layers above it (see STYLE.md, Layout)."""

import ast
import pathlib

SRC = pathlib.Path(__file__).parent.parent / "src" / "eventkit"

# Layer of each private module: a module may import only modules of a lower number,
# or of its own number when listed in SAME_LAYER_OK.
LAYERS = {
    "exceptions": 0,
    # Pure chain logic over plain data, below the registry that stores the upcasters.
    "_upcasting": 0.5,
    "_events": 1,
    "_envelope": 1,
    "_serialization": 2,
    "_store": 3,
    "_projection_store": 3,
    "_aggregate": 4,
    "_snapshots": 5,  # snapshots hold aggregates; the repository takes and reads them
    "_repository": 6,
    "_projections": 5,
    "_migration": 5,
    "_backends": 6,
    "_cli": 7,
    "testing": 7,
    "__init__": 8,
}
# Backends see records, never domain objects: only these modules. _projection_store is the
# record-level storage contract of projections (checkpoints, dead letters, locks).
BACKEND_MAY_IMPORT = {
    "_store",
    "_projection_store",
    "_serialization",
    "_envelope",
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
            found.add(parts[1] if len(parts) > 1 else "__init__")
    return found


def layer_of(path: pathlib.Path) -> str:
    relative = path.relative_to(SRC)
    return relative.parts[0] if len(relative.parts) > 1 else path.stem


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
    """At run time, backends import only the store contract, records and exceptions."""
    violations = [
        f"{path.name} imports {target}"
        for path in (SRC / "_backends").rglob("*.py")
        for target in imported_eventkit_modules(path, typing_only=False) - BACKEND_MAY_IMPORT
    ]
    assert violations == []


def test_only_serialization_imports_cattrs():
    """At run time cattrs is used in one place, so the wire format is decided there."""
    users = [
        path.name
        for path in SRC.rglob("*.py")
        if any(name.split(".")[0] == "cattrs" for name in import_names(path, typing_only=False))
    ]
    assert users == ["_serialization.py"]

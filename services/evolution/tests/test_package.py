"""The evolution package's structure: its error tree and its import graph."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.common.errors import AfinadorError, install_error_handlers
from services.evolution import errors
from services.evolution.errors import EvolutionError, EvolutionFailed, VersionNotFound

PACKAGE = Path(errors.__file__).resolve().parent
ERROR_CLASSES = [cls for _, cls in inspect.getmembers(errors, inspect.isclass)
                 if issubclass(cls, AfinadorError) and cls.__module__ == errors.__name__]
EXPECTED_STATUS = {
    "EvolutionError": 500, "InvalidPromptVersion": 422, "UnknownVersion": 422,
    "VersionNotFound": 404, "RunNotFound": 404, "EvolutionBlocked": 409,
    "InvalidTransition": 409, "NoActiveVersion": 503, "EvolutionFailed": 502,
}


def test_every_error_of_the_service_is_under_its_root_with_its_status() -> None:
    assert {cls.__name__: cls.status_code for cls in ERROR_CLASSES} == EXPECTED_STATUS
    assert all(issubclass(cls, EvolutionError) for cls in ERROR_CLASSES)
    assert len({cls.code for cls in ERROR_CLASSES}) == len(ERROR_CLASSES)


def test_the_module_docstring_draws_every_error() -> None:
    drawn = errors.__doc__ or ""
    for cls in ERROR_CLASSES:
        assert cls.__name__ in drawn


@pytest.mark.parametrize("error", [
    EvolutionFailed("El evolucionador no propuso nada.", "The evolver proposed nothing."),
    VersionNotFound("v9.9.9"),
])
def test_the_one_handler_maps_the_root(error: EvolutionError) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    response = TestClient(app).get("/boom")
    assert response.status_code == error.status_code
    assert response.json()["error"]["code"] == error.code
    assert response.json()["detail"] == error.message_es


def _imports(path: Path) -> set[str]:
    """Modules of this package that ``path`` imports (at any depth in the file)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found.update(n for n in names if n.startswith("services.evolution."))
    return found


def test_the_package_has_no_import_cycle() -> None:
    modules = {
        "services.evolution." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts): p
        for p in PACKAGE.rglob("*.py") if "tests" not in p.parts and p.name != "__init__.py"
    }
    graph = {name: {m for m in _imports(path) if m in modules and m != name}
             for name, path in modules.items()}
    done: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, "import cycle: " + " -> ".join((*trail, name))
        if name in done:
            return
        for child in sorted(graph[name]):
            visit(child, (*trail, name))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())

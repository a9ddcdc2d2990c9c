"""The layers' import rules, read from the code: the GraphQL edge (schema/, resolvers/)
works with values and never touches a document, the types do not import the resolvers
(usercredits/api.py joins them), and every public service method returns values."""

import ast
import inspect
import typing
from pathlib import Path

import pytest
from beanie import Document

import usercredits
from usercredits.services import Services

PACKAGE = Path(usercredits.__file__).parent


def imported(folder: str) -> dict[str, set[str]]:
    """The modules each file of `folder` imports, by file name."""
    found: dict[str, set[str]] = {}
    for path in sorted((PACKAGE / folder).glob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[path.name] = names
    return found


@pytest.mark.parametrize("folder", ["schema", "resolvers"])
def test_the_graphql_edge_imports_no_documents(folder: str) -> None:
    for name, modules in imported(folder).items():
        documents = {m for m in modules if m.split(".")[:2] == ["usercredits", "models"]}
        assert not documents, f"{folder}/{name} imports {documents}"


def test_the_types_do_not_import_the_resolvers() -> None:
    for name, modules in imported("schema").items():
        resolvers = {m for m in modules if m.startswith("usercredits.resolvers")}
        assert not resolvers, f"schema/{name} imports {resolvers}"


def _documents_in(annotation: object) -> set[str]:
    if isinstance(annotation, type) and issubclass(annotation, Document):
        return {annotation.__name__}
    found: set[str] = set()
    for argument in typing.get_args(annotation):
        found |= _documents_in(argument)
    return found


def test_services_return_values_not_documents() -> None:
    checked = 0
    for field in Services.__dataclass_fields__.values():
        service = field.type if isinstance(field.type, type) else None
        assert service is not None, f"Services.{field.name} has no class annotation"
        for name, method in inspect.getmembers(service, inspect.isfunction):
            if name.startswith("_"):
                continue
            returned = typing.get_type_hints(method).get("return")
            assert not _documents_in(returned), f"{service.__name__}.{name} returns a document"
            checked += 1
    assert checked > 30

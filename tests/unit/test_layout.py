"""The package's shape, as a reader relies on it: every import the README, the docs and the
examples show works; no module imports another's private name; the import graph has no cycle."""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT

PACKAGE = ROOT / "sms2fa_middleware"
_SHOWN = re.compile(r"^\s*from (sms2fa_middleware[\w.]*) import ([\w, ]+)", re.MULTILINE)


def _shown_imports() -> list[tuple[str, str]]:
    texts = [(ROOT / "README.md").read_text()]
    texts += [p.read_text() for p in (ROOT / "docs").glob("*.md")]
    texts += [p.read_text() for p in (ROOT / "examples").rglob("*.py")]
    return sorted(
        {
            (module, name.strip())
            for text in texts
            for module, names in _SHOWN.findall(text)
            for name in names.split(",")
            if name.strip()
        }
    )


@pytest.mark.parametrize(("module", "name"), _shown_imports())
def test_every_import_the_readme_and_examples_show_works(module: str, name: str) -> None:
    if module.endswith(".django"):
        pytest.importorskip("django")
    assert hasattr(importlib.import_module(module), name), f"from {module} import {name}"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.with_suffix("").relative_to(ROOT).parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _relative_imports(name: str, path: Path) -> Iterator[tuple[str, str]]:
    """(module, imported name) for each relative import of a module, TYPE_CHECKING ones too."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                yield target, alias.name


def test_no_module_imports_a_private_name_of_another() -> None:
    private = [
        f"{name}: {target}.{imported}"
        for name, path in _modules().items()
        for target, imported in _relative_imports(name, path)
        if imported.startswith("_") and not imported.startswith("__")
    ]
    assert private == []


def test_the_import_graph_has_no_cycle() -> None:
    modules = _modules()
    graph = {
        name: {f"{t}.{i}" if f"{t}.{i}" in modules else t for t, i in _relative_imports(name, path)}
        - {name}
        for name, path in modules.items()
    }
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph.get(name, ())):
            if state.get(dep) == 1:
                pytest.fail("import cycle: " + " -> ".join([*trail[trail.index(dep) :], dep]))
            if dep in graph and dep not in state:
                visit(dep, [*trail, dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        (
            "sms2fa_middleware.http",
            "sms2fa_middleware.messages",
            [
                "Request",
                "Response",
                "wire",
                "json_response",
                "too_large",
                "MAX_BODY",
                "client_address",
                "json_object",
                "only_keys",
                "error_response",
                "iso",
            ],
        ),
        ("sms2fa_middleware.http", "sms2fa_middleware.api.verification", ["VerificationAPI"]),
        (
            "sms2fa_middleware.client",
            "sms2fa_middleware.api.client",
            ["SMSAuthClient", "SMSAuthError"],
        ),
        ("sms2fa_middleware.openapi", "sms2fa_middleware.api.openapi", ["openapi_document"]),
        (
            "sms2fa_middleware.service",
            "sms2fa_middleware.api.service",
            ["VerificationService", "create_app", "PREFIX_ENV"],
        ),
    ],
)
def test_moved_names_are_still_importable_from_where_they_were(
    old: str, new: str, names: list[str]
) -> None:
    """Imports (and uvicorn command lines, ``sms2fa_middleware.service:create_app``) written
    before the API moved into ``api/`` keep working: the old module re-exports the same
    objects."""
    before, after = importlib.import_module(old), importlib.import_module(new)
    for name in names:
        assert getattr(before, name) is getattr(after, name), f"{old}.{name}"


def test_the_cli_serves_the_app_by_an_import_string_that_resolves() -> None:
    """uvicorn workers import the service by string: a moved module must not break it."""
    source = (PACKAGE / "cli.py").read_text()
    found = re.search(r'"(sms2fa_middleware[\w.]*):(\w+)"', source)
    assert found, "no import string in cli.py"
    module = importlib.import_module(found[1])
    assert callable(getattr(module, found[2]))

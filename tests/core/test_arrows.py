"""ARCHITECTURE.md's arrows between apps, read from the code: an import against them
(core reaching into an app, accounts into a feature app, keys into its consumers) fails
here before the cycle it starts is built upon. Migrations are left out: they name other
apps' tables by design."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = {
    "config",
    "core",
    "accounts",
    "keys",
    "connections",
    "models_catalog",
    "usage",
    "assistant",
    "billing",
    "dashboard",
}
BASE = {"core", "accounts"}  # every feature app may use these
ALLOWED = {
    "core": set(),
    "accounts": {"core"},
    "keys": BASE,
    "models_catalog": BASE,
    "connections": BASE,
    "usage": BASE | {"keys", "models_catalog"},
    "billing": BASE | {"usage"},
    "assistant": BASE | {"keys", "connections", "models_catalog", "usage", "billing"},
    "dashboard": APPS - {"config", "dashboard"},
}


def _imported_apps(app: str) -> dict[str, str]:
    """Each other app ``app`` imports, with one place that does."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / app).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in APPS and top != app:
                    found.setdefault(top, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


@pytest.mark.parametrize("app", sorted(ALLOWED))
def test_an_app_imports_only_what_its_arrows_allow(app):
    against = {
        other: where for other, where in _imported_apps(app).items() if other not in ALLOWED[app]
    }
    assert against == {}

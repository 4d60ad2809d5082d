"""ARCHITECTURE.md's arrows between apps, read from the code: an import against them
(core reaching into an app, accounts into a feature app, keys into its consumers) fails
here before the cycle it starts is built upon. Migrations are left out: they name other
apps' tables by design."""

import ast
from pathlib import Path

import pytest
from django.apps import apps

ROOT = Path(__file__).resolve().parents[2]
# Kay's own apps (those in this repository), and config, which no app imports.
APPS = {app.name for app in apps.get_app_configs() if (ROOT / app.name).is_dir()} | {"config"}
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


@pytest.mark.parametrize("app", sorted(APPS - {"config"}))
def test_an_app_imports_only_what_its_arrows_allow(app):
    assert app in ALLOWED, f"add {app}'s arrows (ARCHITECTURE.md) to ALLOWED"
    against = {
        other: where for other, where in _imported_apps(app).items() if other not in ALLOWED[app]
    }
    assert against == {}

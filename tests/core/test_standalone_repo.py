"""A clone of the repository tests itself with nothing beside it.

The fakes once read their payloads from a folder next to the checkout, so a fresh clone
failed. `.ci/run` proves the whole suite passes on a bare clone; these tests name the
cause when it would not.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fakes import openrouter, server

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SIBLING = "shared"  # the folder beside the checkout that held the payloads
# Either spelling of a path to it: relative (dot-dot, slash, the name) or a `Path` join.
OUTSIDE = re.compile(rf"\.\./{SIBLING}\b|/\s*[\"']{SIBLING}[\"']")


def _tracked() -> list[str]:
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listing = subprocess.run(
        [git, "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    return [name for name in listing.decode().split("\0") if name]


def test_the_check_recognises_both_spellings():
    assert OUTSIDE.search("payloads in ``../" + SIBLING + "/data/``")
    assert OUTSIDE.search('Path(__file__).parents[3] / "' + SIBLING + '" / "data"')
    assert not OUTSIDE.search("from celery import shared_task")


def test_no_tracked_file_refers_to_a_folder_beside_the_repository():
    offenders = []
    for name in _tracked():
        path = ROOT / name
        if not path.is_file():
            continue  # deleted in the working tree
        content = path.read_bytes()
        if b"\0" in content:
            continue  # binary
        for number, line in enumerate(content.decode("utf-8", "replace").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{name}:{number}: {line.strip()[:120]}")
    assert offenders == []


def test_the_fakes_read_only_tracked_fixtures():
    assert server.DATA == FIXTURES
    tracked = set(_tracked())
    on_disk = {str(path.relative_to(ROOT)) for path in FIXTURES.rglob("*") if path.is_file()}
    assert on_disk <= tracked, f"not committed: {sorted(on_disk - tracked)}"
    names = [
        *openrouter.MODELS.values(),
        openrouter.PROVIDERS,
        *openrouter.RECORDED_ENDPOINTS.values(),
    ]
    assert all(f"tests/fixtures/{name}" in tracked for name in names)

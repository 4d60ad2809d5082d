"""`.env.example` documents every variable the settings read (docs match the code)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READS = re.compile(
    r"""(?:env(?:\.\w+)?|_required|_duration|os\.environ\.get)\(\s*["']([A-Z][A-Z0-9_]+)["']"""
)


def test_every_setting_read_from_the_environment_is_documented():
    settings_source = (ROOT / "config" / "settings.py").read_text()
    read = set(READS.findall(settings_source)) - {"DJANGO_SETTINGS_MODULE", "KAY_ENV_FILE"}
    documented = set(
        re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE)
    )
    assert read, "the pattern found no settings: update this test"
    assert sorted(read - documented) == []

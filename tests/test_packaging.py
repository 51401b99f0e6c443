"""The wheel carries every package and the styles (pyproject lists packages by hand)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "tuimail").rglob("__init__.py")}
    assert found | {"tuimail.styles"} == listed
    assert list((ROOT / "styles").glob("*.tcss")), "the styles folder has no .tcss file"


def test_every_config_key_is_documented_in_the_readme():
    from tuimail.config import Settings

    readme = (ROOT / "README.md").read_text()
    for section, field in Settings.model_fields.items():
        model = field.annotation
        for key in getattr(model, "model_fields", {}):
            assert key in readme, f"[{section}] {key} is not in the README"

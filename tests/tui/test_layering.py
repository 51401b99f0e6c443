"""Imports point one way (STYLE.md): nothing below the TUI imports Textual or tuimail.tui; the engine
knows nothing of the monitor. Only the CLI may start it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "tuimail"


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_the_tui_and_the_cli_import_textual_or_the_tui():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "tui" or relative.name == "cli.py":
            continue
        bad = {n for n in imported(path) if n.split(".")[0] == "textual" or n.startswith("tuimail.tui")}
        if bad:
            offenders.append(f"{relative}: {sorted(bad)}")
    assert offenders == []


def test_the_tui_does_not_reach_into_protocol_machines():
    offenders = []
    for path in (PACKAGE / "tui").rglob("*.py"):
        bad = {n for n in imported(path) if n.startswith("tuimail.protocols")}
        if bad:
            offenders.append(f"{path.name}: {sorted(bad)}")
    assert offenders == []


def test_the_monitor_talks_only_to_an_engine_client():
    """The TUI reaches the engine through tuimail.control (EngineClient), never through servers/,
    so no screen knows whether the servers run in this process or in a `tuimail serve`."""
    offenders = []
    for path in (PACKAGE / "tui").rglob("*.py"):
        bad = {n for n in imported(path) if n.startswith("tuimail.servers")}
        if bad:
            offenders.append(f"{path.relative_to(PACKAGE)}: {sorted(bad)}")
    assert offenders == []


def test_nothing_below_the_control_layer_imports_it():
    """Imports point one way: tui -> control -> servers -> ... -> core."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in ("tui", "control") or relative.name == "cli.py":
            continue
        bad = {n for n in imported(path) if n.startswith("tuimail.control")}
        if bad:
            offenders.append(f"{relative}: {sorted(bad)}")
    assert offenders == []

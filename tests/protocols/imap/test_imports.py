"""The IMAP protocol package stays sans-I/O and below servers/ and beside store/: no asyncio, no
imports of tuimail.servers, tuimail.store or tuimail.tui."""

import ast
from pathlib import Path

import tuimail.protocols.imap as package

FORBIDDEN = ("asyncio", "tuimail.servers", "tuimail.store", "tuimail.tui", "textual")


def test_imap_package_imports_point_one_way():
    for path in Path(package.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"

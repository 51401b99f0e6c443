"""The POP3 protocol package stays sans-I/O: no asyncio, no sockets, nothing from servers/, store/
or the TUI (it reaches the store through the typing.Protocols in backend.py)."""

import ast
from pathlib import Path

import tuimail.protocols.pop3 as package

FORBIDDEN = ("asyncio", "socket", "tuimail.servers", "tuimail.store", "tuimail.tui", "textual")


def test_pop3_package_imports_point_one_way() -> None:
    paths = list(Path(package.__file__).parent.glob("*.py"))
    assert len(paths) >= 7
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"

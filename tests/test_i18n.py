"""Russian (issue 10 §5): every marked UI string has a Russian translation in the compiled catalogue,
the TUI marks its visible strings, and `language = "ru"` writes the seed's Russian phrases in the
log blocks while the protocol replies on the wire stay ASCII."""

from __future__ import annotations

import ast
import gettext
import socket
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from tests.helpers import PASSWORD, RunningServer, make_config
from tuimail import i18n
from tuimail.config import Config

ROOT = Path(__file__).resolve().parents[1]
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}


def marked_strings() -> set[str]:
    """Every string marked _() / N_() in the package, the key bindings' descriptions and the settings'
    docstrings (scripts/i18n_extra.py: the footer's words and the Settings tab's hints)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("i18n_extra", ROOT / "scripts/i18n_extra.py")
    extra = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extra)
    found = set(extra.extra_messages())
    for _file, _line, message, _comments, _context in extract_from_dir(str(ROOT / "tuimail"), keywords=KEYWORDS):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_marked_string_has_a_russian_translation_in_the_compiled_catalogue():
    marked = marked_strings()
    assert len(marked) > 40
    ru = gettext.translation(i18n.DOMAIN, localedir=i18n.LOCALE_DIR, languages=["ru"])
    untranslated = sorted(m for m in marked if ru.gettext(m) == m and m.strip())
    assert untranslated == [], "run scripts/i18n.sh and translate these in tuimail/locale/ru/LC_MESSAGES/tuimail.po"
    po = read_po(open(i18n.LOCALE_DIR / "ru/LC_MESSAGES/tuimail.po", "rb"))
    for message in po:  # the shipped .mo is the .po compiled (no stale build)
        if message.id and message.string:
            assert ru.gettext(message.id if isinstance(message.id, str) else message.id[0]) in (message.string, message.string[0])
    for message in po:  # placeholders survive translation
        if message.id and isinstance(message.id, str):
            assert sorted(_fields(message.id)) == sorted(_fields(message.string)), message.id


def _fields(text: str) -> list[str]:
    import string

    return [f for _, f, _, _ in string.Formatter().parse(text) if f]


# calls whose string arguments are shown to a person: they must go through _() (key bindings'
# descriptions are translated by tuimail.tui.localise and checked above)
SHOWN = {"Static": (0, None), "Label": (0, None), "Button": (0, None),
         "notify": (0, None), "add_column": (0, None), "TabPane": (0, None), "ConfirmDialog": (0, None),
         "FormRow": (0, None), "Input": (99, "placeholder"), "SystemCommand": (0, None), "update": (0, None)}


def _words(node: ast.AST) -> bool:
    """True for a literal (or f-string) with words in it, outside Rich markup tags."""
    import re

    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        parts = [node.value]
    elif isinstance(node, ast.JoinedStr):
        parts = [v.value for v in node.values if isinstance(v, ast.Constant)]
    else:
        return False
    def data(text: str) -> bool:  # example addresses and host names (list@lab.test, mail.group7.test)
        return bool(text.split()) and all("@" in w or "." in w for w in text.split())

    return any(re.search(r"[A-Za-z]{2}", re.sub(r"\[[^\]]*\]", "", p)) and not data(p) for p in parts)


def test_every_screen_marks_every_visible_string():
    unmarked = []
    for path in sorted((ROOT / "tuimail/tui").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name not in SHOWN:
                continue
            position, keyword = SHOWN[name]
            args = list(node.args[position:position + 1]) + [k.value for k in node.keywords if k.arg == keyword]
            for arg in args:
                if _words(arg):
                    unmarked.append(f"{path.name}:{node.lineno}")
    assert unmarked == []


def test_russian_log_blocks_read_as_the_seeds_and_the_wire_stays_ascii(tmp_path):
    config = make_config(tmp_path)
    config.settings.server.language = "ru"
    config.save()
    server = RunningServer(Config.load(config.path)).start()
    try:
        server.engine.directory.add_account("tatareva@lab.test", PASSWORD)
        wire = b""
        with socket.create_connection(("127.0.0.1", config.settings.ports.smtp), timeout=10) as s:
            s.sendall(b"helo admin\r\nmail from:<tatareva@lab.test>\r\nrcpt to:<tatareva@lab.test>\r\ndata\r\n")
            s.sendall("Subject: привет\r\n\r\nтекст\r\n.\r\nquit\r\n".encode())
            while b"221" not in wire:
                wire += s.recv(4096) or b"221"
        with socket.create_connection(("127.0.0.1", config.settings.ports.pop3), timeout=10) as s:
            s.sendall(f"user tatareva\r\npass {PASSWORD}\r\nlist\r\nquit\r\n".encode())
            while b"signing off" not in wire:
                wire += s.recv(4096) or b"signing off"
        server.wait_for(lambda: "POP" in server.log_text("POP") and "SMTP" in server.log_text("SMTP-in"))
        wire.decode("ascii")  # RFC 5321 §2.4 / RFC 1939 §3: the replies stay ASCII
        smtp, pop = server.log_text("SMTP-in"), server.log_text("POP")
        assert ": Прием SMTP соединения от [127.0.0.1 : " in smtp
        assert "SMTP сессия успешна (Байт принято/передано: " in smtp
        assert "Размер сообщения: " in smtp and "<-- helo admin" in smtp and "--> 250 " in smtp
        assert ": Прием POP соединения от [127.0.0.1 : " in pop
        assert "Отправка LIST ответа (строк: 1, не загружен)" in pop
        assert "POP сессия завершена (Байт принято/передано: " in pop
        assert ": Session " in smtp  # the block heads stay as MDaemon writes them
    finally:
        server.stop()
        i18n.set_language("en")

"""Small text helpers shared by the widgets: sizes, durations, rates."""

from __future__ import annotations

from tuimail.core.logphrases import REASONS
from tuimail.i18n import N_, _


UNITS = (N_("B"), N_("KB"), N_("MB"), N_("GB"))


def human_size(count: int) -> str:
    size = float(count)
    for unit in UNITS:
        if size < 1024 or unit == "GB":
            return f"{int(size)} {_(unit)}" if unit == "B" else f"{size:.1f} {_(unit)}"
        size /= 1024
    return f"{count} {_('B')}"


def duration(seconds: float) -> str:
    """`0:07`, `12:03`, `1:02:03`, `3d 4:05:06`."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"
    return f"{days}d {hours}:{minutes:02}:{secs:02}" if days else text


def rate(count: int, seconds: float) -> str:
    """`1.5 KB/s`, or bytes per second below one kilobyte (`0.8 B/s`), so a telnet session shows more than 0."""
    per_second = count / seconds if seconds > 0 else 0.0
    if per_second >= 1024:
        return _("{n} KB/s").format(n=f"{per_second / 1024:.1f}")
    return _("{n} B/s").format(n=f"{per_second:.1f}")


def yes_no(flag: bool) -> str:
    return _("yes") if flag else _("no")


_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_CONTROLS[0x09] = "\\t"


def visible(text: str) -> str:
    """Control characters a client sent (ESC, BEL, C1...) as `\\x1b`, never raw: a raw ESC would
    recolour or move the operator's terminal, and in an export it would do the same to whoever
    `cat`s the file. Backslashes stay as they are, so text the engine already escaped reads the same."""
    if text.isprintable():
        return text
    return text.translate(_CONTROLS)


_KEY_NAMES = {"slash": "/", "question_mark": "?", "left_square_bracket": "[", "right_square_bracket": "]",
              "delete": "Del", "escape": "Esc", "enter": "Enter", "space": "Space"}


def key_label(key: str) -> str:
    """A binding's key as the operator types it: `slash` -> `/`, `ctrl+s` -> `ctrl+s`."""
    return ",".join(_KEY_NAMES.get(k, k) for k in key.split(","))


# a session's state as the servers name it (protocol states, RFC 1939 §3 / RFC 3501 §3, and the SMTP
# session's last step); the command names (helo, mail, rcpt...) stay as typed
STATES = {"connected": N_("connected"), "authenticated": N_("authenticated"), "delivered": N_("delivered"),
          "authorization": N_("authorization"), "transaction": N_("transaction"), "update": N_("update"),
          "not authenticated": N_("not authenticated"), "selected": N_("selected"), "logout": N_("logout")}


def state_text(state: str) -> str:
    """`selected INBOX` -> `выбрана INBOX` in Russian; unknown words unchanged."""
    for word, label in STATES.items():
        if state.lower() == word or state.lower().startswith(word + " "):
            return _(label) + state[len(word):]
    return state


def reason_text(reason: str) -> str:
    """How a session ended (`client quit`, `killed by operator (TUI)`) in the monitor's language."""
    for known in sorted(REASONS, key=len, reverse=True):
        if reason.startswith(known):
            return _(known) + reason[len(known):]
    return reason

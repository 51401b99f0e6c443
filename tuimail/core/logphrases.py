"""The log files' own phrases in the configured language (issue 10 §5).

Sessions publish their remarks in English (the events stay one language for every subscriber); the
lines are put into the configured language where they become text (`logwriter.event_text`). Each
phrase is a template marked for gettext: `"Accepting {what} connection{tls} from [{peer}]"`; a
line is matched against the templates and rebuilt from the translated one. The Russian catalogue
writes them as the seed's Russian MDaemon does (`Прием SMTP соединения от [192.168.1.59 : 1106]`,
`SMTP сессия успешна (Байт принято/передано: 206/306)`, `Отправка LIST ответа (не загружен)`).
`Session N; ...` heads and `-----` frames stay as they are (MDaemon keeps them; readers parse them).
"""

from __future__ import annotations

import functools
import re

from tuimail import i18n
from tuimail.i18n import N_

TEMPLATES = (
    N_("Accepting {what} connection{tls} from [{peer}]"),
    N_("SMTP session successful (Bytes in/out: {bytes})"),
    N_("SMTP session terminated (Bytes in/out: {bytes})"),
    N_("POP session complete (Bytes in/out: {bytes})"),
    N_("IMAP session complete, ({count} bytes)"),
    N_("Sending {verb} response ({count} lines, not logged)"),
    N_("Sending FETCH response (not logged)..."),
    N_("Sending message (not logged)"),
    N_("Message size: {count} bytes"),
    N_("Message saved for {address}: {path}"),
    N_("Delivery failed, message not accepted: {error}"),
    N_("Authentication failed for {who}: {why}"),
    N_("Authentication failed: {why}"),
    N_("Login refused: {address} is blocked after failed logins"),
    N_("Session closed by {who}"),
    N_("Session still open at server stop"),
    N_("TLS negotiated{version}"),
    N_("TLS handshake completed"),
    N_("TLS negotiation failed: {error}"),
    N_("Inactivity timeout ({count} s)"),
    N_("The client took more than {count} s to send a command line"),
    N_("The client took more than {count} s to send the message data"),
    N_("{count} message(s) removed"),
    N_("Literal of {count} bytes (not logged)"),
    N_("{count} bad commands in a row; closing the session"),
    N_("tuimail {version} starting on {host} (config {path})"),
    N_("tuimail stopped"),
    N_("{name} listening on {address}"),
    N_("Refused a connection from {address}: {reason}"),
)
# a closing line may end with the reason in brackets: "... (Bytes in/out: 1/2) [connection lost]"
REASONS = (N_("client quit"), N_("connection lost"), N_("killed by operator"), N_("timeout"),
           N_("server stopping"), N_("server stopping (operator quit the TUI)"))
_REASON = re.compile(r"^(.*) \[([^\[\]]+)\]$")


@functools.cache
def _compiled(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{\w+\})", template)
    pattern = "".join(f"(?P<{p[1:-1]}>.*?)" if re.fullmatch(r"\{\w+\}", p) else re.escape(p) for p in parts)
    return re.compile(f"^{pattern}$", re.S)


def localise(text: str) -> str:
    """`text` in the configured language (unchanged in English or when no template matches)."""
    if i18n.language == "en":
        return text
    suffix = ""
    match = _REASON.match(text)
    if match and any(match.group(2).startswith(r) for r in REASONS):
        text, reason = match.groups()
        suffix = f" [{i18n._(reason)}]"
    for template in TEMPLATES:
        found = _compiled(template).match(text)
        if found:
            return i18n._(template).format(**found.groupdict()) + suffix
    return text + suffix

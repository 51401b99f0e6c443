"""POP3 (RFC 1939, RFC 2449 CAPA, RFC 5034 SASL) as a sans-I/O machine.

Bytes in, replies and effects out; no sockets and no asyncio here. `tuimail.servers.pop3` is the
asyncio glue that drives a `Pop3Machine`, fulfils its `AuthRequest` effects (argon2 checks run in a
worker thread) and writes its replies to the transport.

UIDL: a message's unique id is `<uidvalidity>.<uid>` of the store's INBOX, so it stays the same
across sessions and carries the very uid IMAP shows for the message (RFC 1939 §7 allows any
printable 0x21-0x7E string of up to 70 characters).
"""

from tuimail.protocols.pop3.backend import DropMessage, Maildrop, MaildropProvider
from tuimail.protocols.pop3.machine import Pop3Machine
from tuimail.protocols.pop3.outputs import (
    AuthRequest,
    AuthResult,
    CloseConnection,
    Noted,
    Output,
    Received,
    Reply,
    StartTls,
    StateChanged,
)
from tuimail.protocols.pop3.state import State

__all__ = [
    "AuthRequest",
    "AuthResult",
    "CloseConnection",
    "DropMessage",
    "Maildrop",
    "MaildropProvider",
    "Noted",
    "Output",
    "Pop3Machine",
    "Received",
    "Reply",
    "StartTls",
    "State",
    "StateChanged",
]

"""Rules for mailbox names, domain names and addresses, shared by the CLI, the TUI and the protocols.

Mailbox names follow the lab's rule (seed, step 7): Latin letters, digits, `_`, `-` and `.`, with no
leading dot (a leading dot would collide with Maildir++ folder names). Local parts compare
case-insensitively, as every mail server in practice does (RFC 5321 §2.4 allows it).
"""

from __future__ import annotations

import ipaddress
import re

from tuimail.i18n import N_, _

# the messages are in `[server] language` (the forms show them; the CLI runs in English)
MAILBOX_RULE = N_("Latin letters, digits, '_', '-' and '.', not starting with '.', at most 64 characters")
DOMAIN_RULE = N_("labels of Latin letters, digits and '-', separated by dots, at most 253 characters")

_MAILBOX = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class AddressError(ValueError):
    """A name or address that breaks a rule; the message states the rule."""


def check_mailbox(name: str) -> str:
    """Return the mailbox name lower-cased, or raise AddressError naming the rule."""
    if not _MAILBOX.match(name) or ".." in name:
        raise AddressError(_("mailbox name {name} is not valid: use {rule}").format(name=repr(name), rule=_(MAILBOX_RULE)))
    return name.lower()


def check_domain(name: str) -> str:
    """Return the domain name lower-cased, or raise AddressError naming the rule."""
    candidate = name.rstrip(".").lower()
    if not candidate or len(candidate) > 253 or not all(_LABEL.match(p) for p in candidate.split(".")):
        raise AddressError(_("domain name {name} is not valid: use {rule}").format(name=repr(name), rule=_(DOMAIN_RULE)))
    return candidate


def check_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise AddressError(_("{text} is not an IP address").format(text=repr(text))) from None


def split_address(address: str) -> tuple[str, str]:
    """`Bob@Lab.Test` -> ("bob", "lab.test"), both checked; raises AddressError."""
    if address.count("@") != 1:
        raise AddressError(_("{address} is not an address of the form mailbox@domain").format(address=repr(address)))
    local, domain = address.split("@")
    return check_mailbox(local), check_domain(domain)


def parse_path(text: str) -> str | None:
    """The address in an SMTP MAIL FROM / RCPT TO argument, typed with or without angle brackets.

    Returns "" for the null reverse-path `<>` and None when nothing address-like is there.
    `<bob@lab.test> SIZE=100` and `bob@lab.test` both give "bob@lab.test". Source routes
    (`<@a,@b:bob@lab.test>`, RFC 5321 §4.1.2) are accepted and ignored.
    """
    text = text.strip()
    if text.startswith("<"):
        end = text.find(">")
        if end < 0:
            return None
        inner = text[1:end].strip()
    else:
        inner = text.split(" ", 1)[0] if text else ""
    if ":" in inner and inner.startswith("@"):
        inner = inner.split(":", 1)[1]
    if inner == "":
        return "" if text.startswith("<") else None
    if any(c.isspace() for c in inner) or inner.count("@") != 1:
        return None
    local, domain = inner.rsplit("@", 1)
    if not local or not domain:
        return None
    return inner

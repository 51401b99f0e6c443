"""IMAP QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT and SETQUOTA, with the STORAGE resource only.

Each account has one quota root, named "" (every folder of the account counts against it, as the
SMTP server counts it at RCPT). STORAGE is in units of 1024 octets (RFC 9208 §5.1). SETQUOTA is for
administrators, who set quotas with `tuimail account set ADDRESS --quota SIZE`: NO [NOPERM] here.
The machine asks `Options.quota_of(user)` for (bytes used, bytes allowed); None = no quota.
"""

from __future__ import annotations

from tuimail.protocols.imap.mailboxes import quote
from tuimail.protocols.imap.tokens import ParseError, text

ROOT = ""


class QuotaCommands:
    def _quota(self) -> tuple[int, int] | None:
        quota_of = getattr(self.options, "quota_of", None)
        return quota_of(self.user) if quota_of is not None and self.user else None

    def _quota_response(self, usage: tuple[int, int]) -> None:
        used, limit = usage
        # RFC 9208 §5.1: STORAGE counts 1024-octet units, rounded up
        self._untagged(f'QUOTA "{ROOT}" (STORAGE {(used + 1023) // 1024} {limit // 1024})')

    def do_getquotaroot(self, tag: str, args: list) -> str:
        if len(args) != 1:
            raise ParseError("GETQUOTAROOT needs a mailbox name")
        name = self._name(args[0])
        if name != "INBOX" and not self.mailbox.exists(name):
            return f"NO [NONEXISTENT] Mailbox {name} does not exist"
        usage = self._quota()
        # RFC 9208 §4.3.2: the mailbox's roots (none when it has no quota), then each root's QUOTA
        self._untagged(f'QUOTAROOT {quote(name)}' + (f' "{ROOT}"' if usage else ""))
        if usage:
            self._quota_response(usage)
        return "OK GETQUOTAROOT completed"

    def do_getquota(self, tag: str, args: list) -> str:
        if len(args) != 1:
            raise ParseError("GETQUOTA needs a quota root name")
        usage = self._quota()
        if text(args[0]) != ROOT or usage is None:
            return "NO [NONEXISTENT] No such quota root"
        self._quota_response(usage)
        return "OK GETQUOTA completed"

    def do_setquota(self, tag: str, args: list) -> str:
        return "NO [NOPERM] Quotas are set by the administrator (tuimail account set ADDRESS --quota SIZE)"

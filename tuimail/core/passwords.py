"""Password hashing (argon2id, PHC strings that Dovecot's ARGON2ID scheme also reads) and the
strong-password policy (`[policy] require_strong_passwords`)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# Moderate parameters: ~20 ms per verify here, so a lab of 30 students logging in at once is fine,
# while an offline attacker still pays 32 MiB per guess.
_hasher = PasswordHasher(time_cost=2, memory_cost=32 * 1024, parallelism=1)

from tuimail.i18n import N_, _

# in `[server] language` where shown (the forms); the CLI runs in English
STRONG_RULE = N_("at least 8 characters with an upper-case letter, a lower-case letter and a digit, not containing the mailbox name")
RELAX_HINT = N_("or allow simple passwords: [policy] require_strong_passwords = false (Settings tab)")


class WeakPassword(ValueError):
    pass


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """True when `password` matches; never raises for a wrong or malformed hash."""
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password(password: str, mailbox: str, *, strong: bool) -> None:
    """Raise WeakPassword (with the rule) if the password breaks the policy."""
    if not password:
        raise WeakPassword(_("the password is empty"))
    if any(c in password for c in "\r\n\0"):
        raise WeakPassword(_("the password may not contain line breaks or NUL"))
    if not strong:
        return
    if (
        len(password) < 8
        or not any(c.isupper() for c in password)
        or not any(c.islower() for c in password)
        or not any(c.isdigit() for c in password)
        or (mailbox and mailbox.lower() in password.lower())
    ):
        raise WeakPassword(_("the password is too weak: use {rule}; {hint}").format(rule=_(STRONG_RULE), hint=_(RELAX_HINT)))

"""The first run: the installer's questions (seed, steps 4-11) answered in one step.

`tuimail setup ...` and the TUI's setup screen both call `run_setup`: the group's domain (it becomes the
primary domain and replaces the shipped `lab.test` placeholder while that has no accounts), its IP
address, the hostname used in greetings (default `mail.<domain>`), the first administrator, the
strong-password switch and the language (`[server] language`, "en" or "ru"; empty leaves it). Everything is checked before anything is written, so a refused setup leaves
config.toml and accounts.json as they were. A server that already has an account is set up: the
setup is refused (add more with `tuimail domain add` / `tuimail account add`).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from tuimail.config import DomainSettings
from tuimail.core.addresses import AddressError, check_domain, check_ip, check_mailbox
from tuimail.core.directory import Account, Directory, DirectoryError
from tuimail.core.passwords import RELAX_HINT, WeakPassword, check_password
from tuimail.i18n import _

PLACEHOLDER_DOMAIN = "lab.test"  # what the shipped config.toml and the defaults host


class SetupError(DirectoryError):
    """A refused setup; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class SetupRequest:
    domain: str
    admin: str  # the administrator's mailbox name ("admin", or "admin@<domain>")
    password: str
    ip: str = "127.0.0.1"
    hostname: str = ""  # empty: mail.<domain>
    full_name: str = ""
    strong_passwords: bool = True
    language: str = ""  # "en" / "ru": [server] language (the monitor, notes, log phrases); "" leaves it


LANGUAGES = ("en", "ru")


def needs_setup(directory: Directory) -> bool:
    """True while no account exists: the monitor then opens the setup screen."""
    return not directory.accounts()


def refuse_if_set_up(directory: Directory) -> None:
    """Raise SetupError when the server already has an account (the setup runs once)."""
    directory.refresh(force=True)
    existing = directory.accounts()
    if existing:
        raise SetupError(f"this server is already set up ({len(existing)} account(s), primary domain "
                         f"{directory.primary_domain}); add more with: tuimail domain add / tuimail account add")


def checked(request: SetupRequest, *, password: bool = True) -> SetupRequest:
    """The request with names normalised; raises SetupError (or WeakPassword) naming the first problem.
    `password=False` checks everything but the password (to refuse bad names before asking for it)."""
    try:
        domain = check_domain(request.domain)
    except AddressError as e:
        raise SetupError(f"--domain: {e}") from None
    try:
        ip = check_ip(request.ip)
    except AddressError as e:
        raise SetupError(f"--ip: {e}") from None
    try:
        hostname = check_domain(request.hostname or f"mail.{domain}")
    except AddressError as e:
        raise SetupError(f"--hostname: {e}") from None
    mailbox, _at, in_domain = request.admin.strip().partition("@")
    if in_domain and in_domain.lower() != domain:
        raise SetupError(f"--admin: the administrator's mailbox must be in {domain} (give just the mailbox name)")
    try:
        mailbox = check_mailbox(mailbox)
    except AddressError as e:
        raise SetupError(f"--admin: {e}") from None
    if any(c in request.full_name for c in "\0\r\n") or len(request.full_name) > 2000:
        raise SetupError("--full-name may not contain line breaks and is at most 2000 characters")
    language = request.language.strip().lower()
    if language and language not in LANGUAGES:
        raise SetupError(f"--language: {request.language!r} is not one of: {', '.join(LANGUAGES)}")
    try:
        if password:
            check_password(request.password, mailbox, strong=request.strong_passwords)
    except WeakPassword as e:  # name this command's switch too
        raise WeakPassword(str(e).replace(_(RELAX_HINT), "or allow simple passwords with --weak-passwords "
                                                      "([policy] require_strong_passwords = false)")) from None
    return SetupRequest(domain, mailbox, request.password, ip, hostname, request.full_name.strip(), request.strong_passwords,
                        language)


def run_setup(directory: Directory, request: SetupRequest) -> Account:
    """Check everything, then write config.toml (domain, primary, hostname, policy) and the first
    administrator. Slow (argon2): call it with asyncio.to_thread from a screen."""
    refuse_if_set_up(directory)
    request = checked(request)
    config = directory.config
    before = config.settings.model_copy(deep=True)
    settings = config.settings
    domains = [d for d in settings.domains if d.name not in (PLACEHOLDER_DOMAIN, request.domain)]
    settings.domains = [DomainSettings(name=request.domain, ip=request.ip), *domains]
    settings.server.primary_domain = request.domain
    settings.server.hostname = request.hostname
    settings.policy.require_strong_passwords = request.strong_passwords
    if request.language:
        settings.server.language = request.language
    try:
        directory.save_config()
        return directory.add_account(f"{request.admin}@{request.domain}", request.password,
                                     full_name=request.full_name, admin=True)
    except Exception:
        config.settings = before  # never half set up: put the file back as it was
        directory.save_config()
        raise


def machine_addresses() -> list[str]:
    """This machine's IP addresses, the outward one first and loopback last (offered by the setup
    screen; no packet is sent)."""
    found: list[str] = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: only selects a route
            found.append(s.getsockname()[0])
    except OSError:
        pass
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            address = str(info[4][0])
            if address not in found:
                found.append(address)
    except OSError:
        pass
    found = [a for a in found if not a.startswith("127.")]
    return [*found, "127.0.0.1"]

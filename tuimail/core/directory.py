"""The directory: hosted domains (from config.toml) and accounts (from data_dir/accounts.json).

Accounts are never in config.toml. Passwords are stored only as argon2id hashes, and beside them a
SCRAM-SHA-256 verifier (RFC 5803 text, `core/scram.py`) made whenever a password is set or, for an
older account, at its next successful PLAIN/LOGIN/USER login; the accounts file is written
atomically with mode 0600. A running server sees changes made by another process (the CLI)
because every lookup first checks the two files' modification times.

Authentication returns an `AuthOutcome`; protocols give the client one generic error and put the
outcome in the log (STYLE.md habit 6).
"""

from __future__ import annotations

import enum
import hmac
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from tuimail.config import Config, ConfigError, DomainSettings
from tuimail.core.addresses import AddressError, check_domain, check_ip, split_address
from tuimail.core.atomic import atomic_write
from tuimail.core.authcache import AuthCache
from tuimail.core.passwords import check_password, hash_password, verify_password
from tuimail.core.scram import Proof, make_verifier

ACCOUNTS_FILE = "accounts.json"
ALIASES_FILE = "aliases.json"
MAX_EXPANSION = 1000  # addresses one recipient may expand to (a distribution list of lists)
REFRESH_INTERVAL = 1.0  # seconds between looks at the files for changes made by another process


class DirectoryError(ValueError):
    """A refused change (duplicate account, unknown domain...); the message says which."""


class AuthOutcome(enum.Enum):
    OK = "ok"
    USER_UNKNOWN = "user unknown"
    PASSWORD_MISMATCH = "password mismatch"
    ACCESS_DISABLED = "access disabled for this protocol"
    NO_VERIFIER = ("no SCRAM-SHA-256 verifier yet (log in once with PLAIN or LOGIN, "
                   "or set the password again, to make one)")


class Service(enum.Enum):
    SMTP = "smtp"
    POP3 = "pop3"
    IMAP = "imap"


@dataclass(frozen=True, slots=True)
class Account:
    address: str  # mailbox@domain, lower case
    full_name: str = ""
    password_hash: str = ""
    pop: bool = True
    imap: bool = True
    admin: bool = False
    notes: str = ""
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    forward: str = ""  # mail is forwarded to this address (local or remote)
    keep_copy: bool = True  # with `forward`: also keep a copy here
    quota: int = 0  # bytes; 0 = no limit
    scram: str = ""  # SCRAM-SHA-256 verifier, RFC 5803 text ("" until a password is set or used)

    @property
    def mailbox(self) -> str:
        return self.address.split("@")[0]

    @property
    def domain(self) -> str:
        return self.address.split("@")[1]

    def allows(self, service: Service) -> bool:
        return {Service.POP3: self.pop, Service.IMAP: self.imap}.get(service, True)


@dataclass(frozen=True, slots=True)
class Expansion:
    """Where mail to one address goes: local accounts, remote (address, original) pairs, and whether
    an alias or forwarding loop was cut."""

    local: tuple[str, ...]
    remote: tuple[tuple[str, str], ...]
    loop: bool = False


class Directory:
    """Domains and accounts, shared by every protocol; thread-safe for lookups."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._lock = threading.RLock()
        self._accounts: dict[str, Account] = {}
        self._accounts_stamp: tuple[int, int] | None = None
        self._aliases: dict[str, list[str]] = {}
        self._aliases_stamp: tuple[int, int] | None = None
        self._config_stamp = _stamp(config.path)
        self._checked_at = time.monotonic()
        self.auth_cache = AuthCache(lambda: self.config.settings.policy.auth_cache_seconds)
        self._load_accounts()
        self._load_aliases()

    @property
    def aliases_path(self) -> Path:
        return self.config.data_dir / ALIASES_FILE

    @property
    def accounts_path(self) -> Path:
        return self.config.data_dir / ACCOUNTS_FILE

    # ----- reading -----------------------------------------------------------------------------

    def refresh(self, force: bool = False) -> None:
        """Pick up changes another process made to config.toml or accounts.json.

        Looks at the files at most once per REFRESH_INTERVAL (lookups happen several times per SMTP
        transaction); changes made through this object are seen at once.
        """
        now = time.monotonic()
        if not force and now - self._checked_at < REFRESH_INTERVAL:
            return
        with self._lock:
            self._checked_at = now
            stamp = _stamp(self.config.path)
            if stamp != self._config_stamp:
                self._config_stamp = stamp
                try:
                    fresh = Config.load(self.config.path)
                    self.config.settings.domains = fresh.settings.domains
                    self.config.settings.server.primary_domain = fresh.settings.server.primary_domain
                except ConfigError:
                    pass  # keep serving the domains we had; `tuimail check` names the problem
            if _stamp(self.accounts_path) != self._accounts_stamp:
                self._load_accounts()
            if _stamp(self.aliases_path) != self._aliases_stamp:
                self._load_aliases()

    @property
    def domains(self) -> list[DomainSettings]:
        self.refresh()
        return list(self.config.settings.domains)

    @property
    def primary_domain(self) -> str | None:
        """The domain bare mailbox names mean ([server] primary_domain, default the first domain)."""
        self.refresh()
        return self.config.settings.primary

    def hosts(self, domain: str) -> bool:
        self.refresh()
        domain = domain.lower()  # (once, and no copy of the list: asked several times per message)
        return any(d.name == domain for d in self.config.settings.domains)

    def accounts(self, domain: str | None = None) -> list[Account]:
        self.refresh()
        with self._lock:
            found = sorted(self._accounts.values(), key=lambda a: (a.domain, a.mailbox))
        return [a for a in found if domain is None or a.domain == domain.lower()]

    def get(self, address: str) -> Account | None:
        self.refresh()
        return self._accounts.get(address.lower())

    def resolve_login(self, login: str) -> str | None:
        """The address a login name means: the full address, or a bare mailbox in the primary domain."""
        login = login.strip().lower()
        if "@" in login:
            return login
        primary = self.primary_domain
        return f"{login}@{primary}" if primary and login else None

    def authenticate(self, login: str, password: str | Proof, service: Service) -> tuple[AuthOutcome, Account | None]:
        """Check a login: a password (slow, argon2, tens of ms: call it with asyncio.to_thread from a
        server) or a SCRAM-SHA-256 proof (`core/scram.py`, already checked against a verifier)."""
        address = self.resolve_login(login)
        account = self.get(address) if address else None
        if isinstance(password, Proof):
            return self._scram_outcome(account, password, service)
        if account is None:
            verify_password(_DUMMY_HASH, password)  # same cost as a real check: no user enumeration by timing
            return AuthOutcome.USER_UNKNOWN, None
        if not self._password_matches(account, password):
            return AuthOutcome.PASSWORD_MISMATCH, account
        if not account.scram:  # an account older than SCRAM here: the clear password is in hand now
            account = self._add_verifier(account, password)
        if not account.allows(service):
            return AuthOutcome.ACCESS_DISABLED, account
        return AuthOutcome.OK, account

    def scram_verifier(self, login: str) -> str | None:
        """The SCRAM-SHA-256 verifier of the account a login name means (None: no such account, or
        none yet). Fast: SCRAM exchanges call it on the event loop."""
        address = self.resolve_login(login)
        account = self.get(address) if address else None
        return account.scram or None if account else None

    def _scram_outcome(self, account: Account | None, proof: Proof, service: Service) -> tuple[AuthOutcome, Account | None]:
        if account is None:
            return AuthOutcome.USER_UNKNOWN, None
        if not account.scram:
            return AuthOutcome.NO_VERIFIER, account
        # the proof was checked against the verifier the exchange started with: a password changed
        # meanwhile (another verifier) counts as a wrong password
        if not proof.valid or not hmac.compare_digest(proof.verifier, account.scram):
            return AuthOutcome.PASSWORD_MISMATCH, account
        if not account.allows(service):
            return AuthOutcome.ACCESS_DISABLED, account
        return AuthOutcome.OK, account

    def _add_verifier(self, account: Account, password: str) -> Account:
        """Store a SCRAM verifier for an account that lacks one, at a login that proved `password`."""
        with self._lock:
            self.refresh(force=True)
            current = self._accounts.get(account.address)
            if current is None or current.password_hash != account.password_hash:
                return account  # changed or deleted meanwhile: the verifier would not match
            if not current.scram:
                current = replace(current, scram=make_verifier(password))
                self._save_accounts({**self._accounts, current.address: current})
            return current

    def _password_matches(self, account: Account, password: str) -> bool:
        """argon2 verification, skipped for a login verified less than auth_cache_seconds ago (or
        being verified right now by another thread: `AuthCache.check`)."""
        stored = account.password_hash
        return self.auth_cache.check(account.address, password, stored, lambda: verify_password(stored, password))

    def local_recipients(self, address: str) -> list[str] | None:
        """The accounts that mail to `address` lands in, or None when no such local mailbox exists.

        RFC 5321 §4.5.1: postmaster@<domain> (and bare `postmaster`) must be accepted; it reaches the
        domain's administrators, or every administrator when the domain has none.
        """
        address = address.lower()
        if "@" not in address:  # a bare name (`rcpt to:tatareva`, `postmaster`): the primary domain
            address = self.resolve_login(address) or address
        account = self.get(address)
        if account:
            return [account.address]
        local, _, domain = address.rpartition("@")
        if local == "postmaster" and self.hosts(domain):
            admins = [a.address for a in self.accounts(domain) if a.admin]
            admins = admins or [a.address for a in self.accounts() if a.admin]
            return admins or None
        return None

    def sender_addresses(self, account: str) -> set[str]:
        """The MAIL FROM addresses an authenticated account may use: its own and its aliases'."""
        account = account.lower()
        return {account, *(alias for alias, targets in self.aliases().items() if account in targets)}

    def aliases(self) -> dict[str, list[str]]:
        self.refresh()
        return dict(self._aliases)

    def expansion_state(self) -> tuple:
        """What `expand` reads (the accounts, the aliases, the domains and their catch-alls), as a
        value that stays equal while none of it changes: an expansion made under an equal state (and
        without an SRS address, whose validity runs out) is still the expansion. The accounts' and
        aliases' dictionaries and the domain list are replaced on every change, never changed in
        place (compared by identity first: cheap); a catch-all is changed in place (compared as text)."""
        self.refresh()
        domains = self.config.settings.domains
        return self._accounts, self._aliases, domains, [d.catch_all for d in domains]

    def expand(self, address: str, srs=None) -> Expansion | None:
        """Where mail to `address` goes after aliases (a list of targets), forwarding (with or without
        a kept copy) and the domain's catch-all; None when no such local address exists. A loop
        (a -> b -> a) is cut and reported. `srs` decodes SRS bounce addresses (outbound/srs.py)."""
        local: list[str] = []
        remote: list[tuple[str, str]] = []
        loop = False
        aliases = self.aliases()

        def walk(addr: str, original: str, seen: frozenset[str]) -> bool:
            nonlocal loop
            addr = addr.lower()
            if addr in seen or len(seen) > 50:
                loop = True
                return True
            if len(local) + len(remote) >= MAX_EXPANSION:
                return True
            seen = seen | {addr}
            domain = addr.rpartition("@")[2]
            if "@" in addr and not self.hosts(domain):
                if (addr, original) not in remote:
                    remote.append((addr, original))
                return True
            if addr in aliases:
                for target in aliases[addr]:
                    walk(target, original, seen)
                return True
            if srs is not None and addr.startswith("srs0="):
                back = srs(addr)
                if back:
                    return walk(back, original, seen)
            found = self.local_recipients(addr)
            if found is None:
                settings = self.config.settings.domain(domain)
                if settings is not None and settings.catch_all and settings.catch_all.lower() != addr:
                    return walk(settings.catch_all, original, seen)
                return False
            for name in found:
                account = self.get(name)
                if account is not None and account.forward:
                    walk(account.forward, original, seen | {name})
                    if not account.keep_copy:
                        continue
                if name not in local:
                    local.append(name)
            return True

        address = address.lower()
        if address == "postmaster" and self.domains:
            address = f"postmaster@{self.domains[0].name}"
        try:
            if not walk(address, address, frozenset()):
                return None
            return Expansion(tuple(local), tuple(remote), loop)
        finally:
            # `walk` refers to itself (it recurses): without this, every expansion (two per SMTP
            # message) left a cycle of its closure for the garbage collector
            walk = None  # type: ignore[assignment]  # noqa: F841

    # ----- changes -----------------------------------------------------------------------------

    def set_alias(self, address: str, targets: list[str]) -> list[str]:
        mailbox, domain = split_address(address)
        address = f"{mailbox}@{domain}"
        if not self.hosts(domain):
            raise DirectoryError(f"domain {domain} is not hosted here (an alias must be in one of our domains)")
        if not targets:
            raise DirectoryError("an alias needs at least one target address")
        clean = []
        for target in targets:
            t_mailbox, t_domain = split_address(target)
            clean.append(f"{t_mailbox}@{t_domain}")
        with self._lock:
            self.refresh(force=True)
            if address in self._accounts:
                raise DirectoryError(f"{address} is an account; use: tuimail account set {address} --forward TARGET")
            self._save_aliases({**self._aliases, address: clean})
        return clean

    def delete_alias(self, address: str) -> None:
        address = address.lower()
        with self._lock:
            self.refresh(force=True)
            if address not in self._aliases:
                raise DirectoryError(f"no alias {address}")
            self._save_aliases({k: v for k, v in self._aliases.items() if k != address})

    def set_catch_all(self, name: str, address: str) -> DomainSettings:
        with self._lock:
            self.refresh(force=True)
            domain = self.config.settings.domain(name)
            if domain is None:
                raise DirectoryError(f"no domain {name}")
            if address:
                mailbox, target_domain = split_address(address)
                address = f"{mailbox}@{target_domain}"
            domain.catch_all = address
            self._save_config()
        return domain

    def add_account(
        self,
        address: str,
        password: str,
        *,
        full_name: str = "",
        pop: bool = True,
        imap: bool = True,
        admin: bool = False,
        notes: str = "",
    ) -> Account:
        mailbox, domain = split_address(address)
        address = f"{mailbox}@{domain}"
        if not self.hosts(domain):
            raise DirectoryError(f"domain {domain} is not hosted here (add it with: tuimail domain add {domain})")
        check_password(password, mailbox, strong=self.config.settings.policy.require_strong_passwords)
        _check_text(full_name, "full name")
        _check_text(notes, "notes", multiline=True)
        with self._lock:
            self.refresh(force=True)
            if address in self._accounts:
                raise DirectoryError(f"account {address} already exists")
            account = Account(address, full_name, hash_password(password), pop, imap, admin, notes,
                              scram=make_verifier(password))
            self._save_accounts({**self._accounts, address: account})
        return account

    def add_accounts(self, accounts: list[Account]) -> None:
        """Add many accounts (their passwords already hashed) in one write: all of them, or none
        when any already exists (a roster import is all or nothing)."""
        for account in accounts:
            if not self.hosts(account.domain):
                raise DirectoryError(f"domain {account.domain} is not hosted here")
            _check_text(account.full_name, "full name")
            _check_text(account.notes, "notes", multiline=True)
        with self._lock:
            self.refresh(force=True)
            clash = next((a.address for a in accounts if a.address in self._accounts), None)
            if clash:
                raise DirectoryError(f"account {clash} already exists")
            self._save_accounts({**self._accounts, **{a.address: a for a in accounts}})

    def delete_all_accounts(self) -> int:
        """Remove every account (lab reset); returns how many there were."""
        with self._lock:
            self.refresh(force=True)
            count = len(self._accounts)
            self._save_accounts({})
        return count

    def update_account(self, address: str, *, password: str | None = None, **changes) -> Account:
        """Change fields of an account; `password` (when given) is checked and hashed."""
        address = address.lower()
        allowed = {"full_name", "pop", "imap", "admin", "notes", "forward", "keep_copy", "quota"}
        unknown = set(changes) - allowed
        if unknown:
            raise DirectoryError(f"cannot change {', '.join(sorted(unknown))}")
        for key in ("full_name", "notes"):
            if key in changes:
                _check_text(changes[key], key.replace("_", " "), multiline=key == "notes")
        if changes.get("forward"):
            t_mailbox, t_domain = split_address(changes["forward"])
            changes["forward"] = f"{t_mailbox}@{t_domain}"
            if changes["forward"] == address:
                raise DirectoryError("an account cannot forward to itself")
        if "quota" in changes and (not isinstance(changes["quota"], int) or changes["quota"] < 0):
            raise DirectoryError("the quota is a number of bytes (0 = no limit)")
        with self._lock:
            self.refresh(force=True)
            account = self._accounts.get(address)
            if account is None:
                raise DirectoryError(f"no account {address}")
            if password is not None:
                check_password(password, account.mailbox, strong=self.config.settings.policy.require_strong_passwords)
                changes["password_hash"] = hash_password(password)
                changes["scram"] = make_verifier(password)
            account = replace(account, **changes)
            self._save_accounts({**self._accounts, address: account})
        return account

    def delete_account(self, address: str) -> Account:
        address = address.lower()
        with self._lock:
            self.refresh(force=True)
            account = self._accounts.get(address)
            if account is None:
                raise DirectoryError(f"no account {address}")
            self._save_accounts({k: v for k, v in self._accounts.items() if k != address})
        return account

    def add_domain(self, name: str, ip: str = "127.0.0.1", *, primary: bool = False) -> DomainSettings:
        try:
            domain = DomainSettings(name=check_domain(name), ip=check_ip(ip))
        except AddressError as e:
            raise DirectoryError(str(e)) from None
        with self._lock:
            self.refresh(force=True)
            if self.config.settings.domain(domain.name):
                raise DirectoryError(f"domain {domain.name} already exists")
            self.config.settings.domains = [*self.config.settings.domains, domain]
            if primary:
                self.config.settings.server.primary_domain = domain.name
            self._save_config()
        return domain

    def set_primary(self, name: str) -> DomainSettings:
        """Make a hosted domain the primary one (bare mailbox names mean it)."""
        with self._lock:
            self.refresh(force=True)
            domain = self.config.settings.domain(name)
            if domain is None:
                raise DirectoryError(f"no domain {name.lower()} (add it with: tuimail domain add {name.lower()} --primary)")
            self.config.settings.server.primary_domain = domain.name
            self._save_config()
        return domain

    def update_domain(self, name: str, ip: str) -> DomainSettings:
        with self._lock:
            self.refresh(force=True)
            domain = self.config.settings.domain(name)
            if domain is None:
                raise DirectoryError(f"no domain {name}")
            try:
                domain.ip = check_ip(ip)
            except AddressError as e:
                raise DirectoryError(str(e)) from None
            self._save_config()
        return domain

    def delete_domain(self, name: str) -> None:
        name = name.lower()
        with self._lock:
            self.refresh(force=True)
            if not self.config.settings.domain(name):
                raise DirectoryError(f"no domain {name}")
            settings = self.config.settings
            others = [d for d in settings.domains if d.name != name]
            if settings.server.primary_domain == name and others:
                raise DirectoryError(f"domain {name} is the primary domain; make another one primary first "
                                     f"(tuimail domain primary {others[0].name})")
            users = self.accounts(name)
            if users:
                raise DirectoryError(f"domain {name} still has {len(users)} account(s); delete them first")
            if settings.server.primary_domain == name:
                settings.server.primary_domain = ""
            settings.domains = others
            self._save_config()

    # ----- files -------------------------------------------------------------------------------

    def _load_accounts(self) -> None:
        path = self.accounts_path
        stamp = _stamp(path)
        if stamp is None:
            self._accounts, self._accounts_stamp = {}, None
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            accounts = {a["address"]: Account(**a) for a in data.get("accounts", [])}
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise ConfigError(f"{path}: cannot read accounts: {e}") from None
        changed = [a for a, old in self._accounts.items() if accounts.get(a) != old]
        for address in changed:  # a password changed (or the account went) in another process
            self.auth_cache.forget(address)
        self._accounts, self._accounts_stamp = accounts, stamp

    def _save_accounts(self, accounts: dict[str, Account]) -> None:
        path = self.accounts_path
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"version": 1, "accounts": [asdict(a) for a in sorted(accounts.values(), key=lambda a: a.address)]}
        atomic_write(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode(), mode=0o600)
        for address, old in self._accounts.items():
            if accounts.get(address) != old:  # password changed, account changed or deleted
                self.auth_cache.forget(address)
        self._accounts, self._accounts_stamp = accounts, _stamp(path)

    def save_config(self) -> None:
        """Write config.toml after a change to `config.settings` made under this directory's eye."""
        with self._lock:
            self._save_config()
    def _load_aliases(self) -> None:
        path = self.aliases_path
        stamp = _stamp(path)
        if stamp is None:
            self._aliases, self._aliases_stamp = {}, None
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            aliases = {str(k).lower(): [str(t).lower() for t in v] for k, v in data.get("aliases", {}).items()}
        except (OSError, ValueError, TypeError, AttributeError) as e:
            raise ConfigError(f"{path}: cannot read aliases: {e}") from None
        self._aliases, self._aliases_stamp = aliases, stamp

    def _save_aliases(self, aliases: dict[str, list[str]]) -> None:
        path = self.aliases_path
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"version": 1, "aliases": dict(sorted(aliases.items()))}
        atomic_write(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode(), mode=0o600)
        self._aliases, self._aliases_stamp = aliases, _stamp(path)

    def _save_config(self) -> None:
        self.config.save()
        self._config_stamp = _stamp(self.config.path)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _check_text(value: str, what: str, multiline: bool = False) -> None:
    bad = "\0" if multiline else "\0\r\n"
    if any(c in value for c in bad) or len(value) > 2000:
        raise DirectoryError(f"{what} may not contain control line breaks and is at most 2000 characters")


_DUMMY_HASH = hash_password("tuimail-timing-equaliser")

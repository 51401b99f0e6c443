"""Settings: pydantic models for config.toml, loading with tomllib and atomic saving with tomli-w.

Every field has a docstring (shown by `tuimail check --explain` and in the README). Unknown keys are
errors. Paths inside the file are relative to the file. Errors are `ConfigError` with one line that
names the file, the key and, for TOML syntax, the line: never a traceback.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tomli_w
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from tuimail.core.addresses import AddressError, check_domain, check_ip
from tuimail.i18n import _
from tuimail.core.atomic import atomic_write
from tuimail.teaching.exercises import DEFAULT_EXERCISES, check_exercises

Port = Annotated[int, Field(ge=0, le=65535)]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> object:
    """Seconds, or a string such as "90s", "15m", "4h", "5d" (what a person writes in config.toml)."""
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", value.lower())
        if not m:
            raise ValueError(_("{value} is not a duration (e.g. 300, \"5m\", \"4h\", \"5d\")").format(value=repr(value)))
        return float(m.group(1)) * _UNITS[m.group(2) or "s"]
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


def _check_networks(value: list[str]) -> list[str]:
    import ipaddress

    for network in value:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ValueError(_("{network} is not a network in CIDR form (e.g. 192.168.1.0/24)").format(
                network=repr(network))) from None
    return value


# Bumped by every assignment to a setting, to a section of a Settings or to a Config's `settings`
# (SIGHUP, the Settings tab, an edit in a test): what is worked out from the settings on every
# command (the lab's steps, `Engine.exercise_steps`) is kept until it moves, instead of walking the
# models to compare them. Read `generation` before working something out: a change made meanwhile
# moves it again.
generation = 0


def _assigned() -> None:
    global generation
    generation += 1


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True)

    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__(name, value)
        _assigned()


class ServerSettings(_Section):
    hostname: str = "mail.lab.test"
    """Name used in greetings and Received: headers."""
    data_dir: str = "data"
    """Where mail, accounts and TLS material live (relative to the config file)."""
    log_dir: str = "logs"
    """Where SMTP-in.log, POP.log, IMAP.log and system.log are written (relative to the config file)."""
    log_max_bytes: int = Field(10 * 1024 * 1024, ge=4096)
    """A log file larger than this is rotated to NAME.log.1 (up to log_backups files are kept)."""
    log_backups: int = Field(5, ge=0, le=100)
    """How many rotated files to keep per log."""
    language: Literal["en", "ru"] = "en"
    """Language of the monitor, the annotations and the log files' own phrases: "en" or "ru" (protocol replies stay ASCII)."""
    primary_domain: str = ""
    """The domain a bare mailbox name means (`user tatareva`, `rcpt to:tatareva`, `postmaster`); empty = the first [[domains]] entry."""
    log_group: str = ""
    """A group (name or number) allowed to read the logs: log_dir becomes 0750 and the logs 0640 with that
    group, applied at every start. Empty (the default): only the user running tuimail can read them (0700)."""

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str) -> str:
        try:
            return check_domain(value)
        except AddressError as e:
            raise ValueError(str(e)) from None

    @field_validator("primary_domain")
    @classmethod
    def _primary(cls, value: str) -> str:
        if not value:
            return ""
        try:
            return check_domain(value)
        except AddressError as e:
            raise ValueError(str(e)) from None


class PortSettings(_Section):
    address: str = "0.0.0.0"
    """Address every listener binds to (0.0.0.0 = all IPv4 interfaces, 127.0.0.1 = this machine only)."""
    smtp: Port = 2525
    """SMTP for incoming mail (the standard port is 25; 0 disables)."""
    submission: Port = 2587
    """SMTP submission for mail clients, AUTH required (RFC 6409; standard 587; 0 disables)."""
    pop3: Port = 2110
    """POP3 (standard 110; 0 disables)."""
    imap: Port = 2143
    """IMAP4rev1 (standard 143; 0 disables)."""
    smtps: Port = 0
    """SMTP submission over implicit TLS (RFC 8314; standard 465; 0 disables)."""
    pop3s: Port = 0
    """POP3 over implicit TLS (standard 995; 0 disables)."""
    imaps: Port = 0
    """IMAP over implicit TLS (standard 993; 0 disables)."""

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            return check_ip(value)
        except AddressError as e:
            raise ValueError(str(e)) from None

    def listeners(self) -> dict[str, int]:
        """Enabled listeners by name, e.g. {"smtp": 2525, "pop3": 2110}."""
        names = ("smtp", "submission", "pop3", "imap", "smtps", "pop3s", "imaps")
        return {name: getattr(self, name) for name in names if getattr(self, name)}


class PolicySettings(_Section):
    require_strong_passwords: bool = True
    """New passwords need 8+ characters with upper, lower and digit, and must not contain the mailbox name."""
    allow_plaintext_auth: bool = True
    """Allow passwords over unencrypted connections (the lab types them into telnet); warned about when not on loopback."""
    max_message_size: int = Field(26214400, ge=1024)
    """Largest message accepted, in bytes (SMTP answers 552 above it; IMAP refuses larger literals)."""
    inactivity_timeout: int = Field(1800, ge=10)
    """Seconds an IMAP session may stay silent before the server closes it (RFC 3501 §5.4: 30 min)."""
    smtp_timeout: int = Field(300, ge=10)
    """Seconds an SMTP session may stay silent (RFC 5321 §4.5.3.2: 5 min)."""
    pop3_timeout: int = Field(600, ge=10)
    """Seconds a POP3 session may stay silent (RFC 1939 §3: at least 10 min)."""
    command_timeout: int = Field(300, ge=5)
    """Seconds a client may take to send one whole command line or one message's data (drops slow-drip clients)."""
    max_connections: int = Field(500, ge=1)
    """Connections served at once, all protocols together; more are refused politely."""
    max_connections_per_ip: int = Field(50, ge=1)
    """Connections served at once from one client address."""
    max_recipients: int = Field(100, ge=1)
    """Recipients per message (RFC 5321 §4.5.3.1.8 asks for at least 100)."""
    max_bad_commands: int = Field(10, ge=1)
    """Unknown or malformed commands in a row before the session is closed."""
    auth_failures_before_block: int = Field(10, ge=0)
    """Failed logins in a row at one account from one address before that account is refused from there for auth_block_seconds (0 = never block); an account is blocked everywhere after three times as many."""
    auth_spray_accounts: int = Field(5, ge=2)
    """Failed logins at this many different accounts from one address (password spraying) block the whole address (never loopback or trusted_networks)."""
    auth_block_seconds: int = Field(900, ge=1)
    """How long a block lasts; failures older than this are forgotten."""
    auth_max_delay: float = Field(15.0, ge=0)
    """Longest delay before answering a failed login (the delay doubles with each failure: 1, 2, 4... s)."""
    auth_cache_seconds: int = Field(300, ge=0)
    """Seconds a successful login is remembered so the same password is not re-hashed (argon2) each time; 0 = off."""
    allow_networks: list[str] = []
    """Client networks allowed to connect, in CIDR (e.g. "192.168.1.0/24"); empty = everyone."""
    deny_networks: list[str] = []
    """Client networks always refused, in CIDR; checked before allow_networks."""
    trusted_networks: list[str] = []
    """Client networks of your own, in CIDR (e.g. a lab's "192.168.1.0/24"): never blocked as a whole after failed logins (loopback never is either), and they may relay mail to other domains without AUTH."""
    enforce_sender: bool = True
    """Authenticated senders may use only their own address and their aliases as MAIL FROM (553 5.7.1 otherwise)."""
    dmarc_reject: bool = False
    """Refuse (550 5.7.1) mail whose DMARC check fails under a p=reject policy; false = only record the result."""

    @field_validator("allow_networks", "deny_networks", "trusted_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return _check_networks(value)


class TlsSettings(_Section):
    cert: str = ""
    """PEM certificate chain; empty = a self-signed certificate generated into data_dir."""
    key: str = ""
    """PEM private key for `cert`."""


class ExerciseSettings(_Section):
    smtp: list[str] = list(DEFAULT_EXERCISES["smtp"])
    """The SMTP steps of the lab, in order; "HELO|EHLO" means either command counts."""
    pop3: list[str] = list(DEFAULT_EXERCISES["pop3"])
    """The POP3 steps of the lab, in order; "LIST|STAT" means either command counts."""
    imap: list[str] = list(DEFAULT_EXERCISES["imap"])
    """The IMAP steps of the lab, in order (a UID form counts for its command)."""

    @field_validator("smtp", "pop3", "imap")
    @classmethod
    def _known(cls, value: list[str], info) -> list[str]:
        return check_exercises(info.field_name, value)


class TeachingSettings(_Section):
    exercises: ExerciseSettings = ExerciseSettings()
    """[teaching.exercises]: the steps each student's progress is counted against."""
    strict: bool = False
    """Refuse what the servers tolerate by default (bare LF, `mail from:` without <>, 8-bit data without 8BITMIME, over-long lines), naming the rule and its RFC section."""
    mail_transcripts: bool = False
    """Mail each session's log block (secrets `*****`) to the account it logged in as, into its Transcripts folder."""


class OutboundTimeouts(_Section):
    """[outbound.timeouts]: how long the SMTP client waits at each stage (RFC 5321 §4.5.3.2's minimums)."""

    connect: Duration = 30
    """Seconds to wait for the TCP connection (and the TLS handshake on implicit TLS)."""
    greeting: Duration = 300
    """Seconds to wait for the 220 greeting (§4.5.3.2.1: 5 minutes)."""
    command: Duration = 300
    """Seconds to wait for the reply to EHLO/HELO, STARTTLS, AUTH, RSET and QUIT (as MAIL)."""
    mail: Duration = 300
    """Seconds to wait for the reply to MAIL (§4.5.3.2.2: 5 minutes)."""
    rcpt: Duration = 300
    """Seconds to wait for the reply to each RCPT (§4.5.3.2.3: 5 minutes)."""
    data: Duration = 120
    """Seconds to wait for the 354 after DATA (§4.5.3.2.4: 2 minutes)."""
    data_block: Duration = 180
    """Seconds a block of the message may take to be sent, i.e. for the next hop to read it (§4.5.3.2.5: 3 minutes)."""
    data_end: Duration = 600
    """Seconds to wait for the reply after the final dot (§4.5.3.2.6: 10 minutes)."""


class OutboundSettings(_Section):
    relay: str = ""
    """A smarthost ("smtp.example.org:587") that takes all outbound mail not matched by [[routes]]; empty = MX delivery."""
    relay_user: str = ""
    """User name for AUTH at the smarthost (the password: `tuimail outbound relay-password --password-stdin`)."""
    relay_tls: Literal["starttls", "implicit", "none"] = "starttls"
    """TLS to the smarthost: "starttls" (required), "implicit" (port 465) or "none"."""
    port: Port = 25
    """TCP port for delivery to MX hosts (the seed's "outbound SMTP" port)."""
    dns_servers: list[str] = []
    """DNS servers for MX lookups, as "IP" or "IP:PORT"; empty = the system resolver (/etc/resolv.conf)."""
    max_per_domain: int = Field(5, ge=1, le=100)
    """Connections at once to one destination domain; several messages share a connection."""
    retry_schedule: list[Duration] = [300, 900, 1800, 3600, 7200, 14400]
    """Waits before each retry after a 4xx or a connection failure (seconds or "5m"/"1h"); the last repeats."""
    max_queue_age: Duration = 432000
    """How long a message may wait in the queue before it is bounced (seconds or "5d")."""
    delay_warning_after: Duration = 14400
    """Send the sender one delay warning (RFC 3464 DSN) when a message has waited this long ("4h")."""
    timeouts: OutboundTimeouts = OutboundTimeouts()
    """[outbound.timeouts]: per-stage waits of the SMTP client (RFC 5321 §4.5.3.2)."""
    dkim_selector: str = "tuimail"
    """The DKIM selector outbound mail is signed with (the TXT record lives at SELECTOR._domainkey.DOMAIN)."""

    @model_validator(mode="before")
    @classmethod
    def _old_timeout(cls, data):
        """The first version's single `timeout` (one wait per reply, twice it after the dot) still reads:
        it becomes every stage of `[outbound.timeouts]` that the file does not set itself."""
        if isinstance(data, dict) and "timeout" in data:
            data = dict(data)
            value = parse_duration(data.pop("timeout"))
            stages = dict(data.get("timeouts") or {})
            for stage in ("greeting", "command", "mail", "rcpt", "data", "data_block"):
                stages.setdefault(stage, value)
            if isinstance(value, int | float):
                stages.setdefault("data_end", 2 * value)
            data["timeouts"] = stages
        return data

    @field_validator("relay")
    @classmethod
    def _relay(cls, value: str) -> str:
        if value:
            host, _, port = value.rpartition(":") if ":" in value else (value, "", "587")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{value!r} is not HOST:PORT (e.g. smtp.example.org:587)")
        return value

    @field_validator("dns_servers")
    @classmethod
    def _dns(cls, value: list[str]) -> list[str]:
        for server in value:
            host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "53")
            try:
                check_ip(host)
            except AddressError:
                raise ValueError(f"{server!r} is not IP or IP:PORT") from None
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{server!r}: bad port")
        return value

    @field_validator("retry_schedule")
    @classmethod
    def _schedule(cls, value: list[float]) -> list[float]:
        if not value:
            raise ValueError("give at least one wait (e.g. [300, 900, 3600])")
        return value


class RouteSettings(_Section):
    domain: str
    """Recipient domain this route is for ("group2.test"), or "*" for every domain not hosted here."""
    host: str
    """The next hop's address or host name."""
    port: Port = 25
    """The next hop's SMTP port."""

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if value == "*":
            return value
        try:
            return check_domain(value)
        except AddressError as e:
            raise ValueError(str(e)) from None


class MetricsSettings(_Section):
    address: str = ""
    """host:port where Prometheus metrics are served over HTTP (e.g. 127.0.0.1:9187); empty = off."""

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("give host:port, e.g. 127.0.0.1:9187 (empty = off)")
        if host != "localhost":
            try:
                check_ip(host.strip("[]"))
            except AddressError as e:
                raise ValueError(str(e)) from None
        return value


class DomainSettings(_Section):
    name: str
    """The domain's name, e.g. lab.test."""
    ip: str = "127.0.0.1"
    """The IP address the domain is served on (shown to users; the listeners bind [ports] address)."""
    catch_all: str = ""
    """Mail to an unknown mailbox of this domain goes to this address (empty = 550 as usual)."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            return check_domain(value)
        except AddressError as e:
            raise ValueError(str(e)) from None

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        try:
            return check_ip(value)
        except AddressError as e:
            raise ValueError(str(e)) from None


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    """[server]"""
    ports: PortSettings = PortSettings()
    """[ports]"""
    policy: PolicySettings = PolicySettings()
    """[policy]"""
    tls: TlsSettings = TlsSettings()
    """[tls]"""
    teaching: TeachingSettings = TeachingSettings()
    """[teaching]"""
    metrics: MetricsSettings = MetricsSettings()
    """[metrics]"""
    outbound: OutboundSettings = OutboundSettings()
    """[outbound]"""
    routes: list[RouteSettings] = []
    """[[routes]]: static next hops per recipient domain, checked before the relay and MX."""
    domains: list[DomainSettings] = []
    """[[domains]]: the mail domains this server hosts; bare logins mean [server] primary_domain (default: the first)."""

    @field_validator("domains")
    @classmethod
    def _unique(cls, value: list[DomainSettings]) -> list[DomainSettings]:
        names = [d.name for d in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"domain {dupes[0]} is listed twice")
        return value

    def domain(self, name: str) -> DomainSettings | None:
        name = name.lower()
        return next((d for d in self.domains if d.name == name), None)

    @property
    def primary(self) -> str | None:
        """The primary domain's name: [server] primary_domain, else the first domain (None: no domain)."""
        wanted = self.server.primary_domain
        if wanted and self.domain(wanted):
            return wanted
        return self.domains[0].name if self.domains else None


class ConfigError(Exception):
    """One line for the user: file, key, problem."""


@dataclass
class Config:
    """Settings together with the file they came from (paths resolve against it)."""

    settings: Settings
    path: Path

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        _assigned()

    @property
    def base(self) -> Path:
        return self.path.parent

    @property
    def data_dir(self) -> Path:
        return self.resolve(self.settings.server.data_dir)

    @property
    def log_dir(self) -> Path:
        return self.resolve(self.settings.server.log_dir)

    def resolve(self, relative: str) -> Path:
        """A path from the file, made absolute against the file's folder (no file-system access)."""
        return Path(os.path.normpath(os.path.join(os.path.abspath(self.base), relative)))

    @classmethod
    def load(cls, path: Path) -> Config:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot read: {e}") from None
        return cls(parse_settings(text, path), path)

    def save(self) -> None:
        """Write atomically; the previous file is kept as config.toml.bak."""
        save_settings(self.settings, self.path)


def parse_settings(text: str, path: Path | str = "config.toml") -> Settings:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: TOML syntax error: {e}") from None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        key = _dotted(err["loc"])
        where = _line_of(text, err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        value = f" (got {err['input']!r})" if err["type"] not in ("extra_forbidden", "missing") else ""
        more = f" (and {len(e.errors()) - 1} more problem(s))" if len(e.errors()) > 1 else ""
        raise ConfigError(f"{path}{where}: {key}: {msg}{value}{more}") from None
    primary = settings.server.primary_domain
    if primary and not settings.domain(primary):
        where = _line_of(text, ("server", "primary_domain"))
        raise ConfigError(f"{path}{where}: server.primary_domain: {primary} is not one of the [[domains]] "
                          f"(add it with: tuimail domain add {primary})")
    return settings


def dump_settings(settings: Settings) -> str:
    """TOML text with a `[[domains]]` table per domain, as a person would write it."""
    data = settings.model_dump(mode="json")
    domains = data.pop("domains")
    routes = data.pop("routes")
    text = tomli_w.dumps(data)
    for route in routes:
        text += "\n[[routes]]\n" + tomli_w.dumps(route)
    for domain in domains:
        text += "\n[[domains]]\n" + tomli_w.dumps(domain)
    return text


def save_settings(settings: Settings, path: Path) -> None:
    text = dump_settings(settings)
    parse_settings(text, path)  # never write what we could not read back
    if path.exists():
        atomic_write(path.with_name(path.name + ".bak"), path.read_bytes())
    atomic_write(path, text.encode("utf-8"))


def default_config_path() -> Path:
    """./config.toml when it exists, else $XDG_CONFIG_HOME/tuimail/config.toml (DESIGN.md)."""
    local = Path("config.toml")
    if local.exists():
        return local.resolve()
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "tuimail" / "config.toml"


def load_or_create(path: Path | None) -> Config:
    """Load `path` (must exist), or the default path, writing the defaults there on first run."""
    if path is not None:
        return Config.load(path)
    path = default_config_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        settings = Settings(domains=[DomainSettings(name="lab.test", ip="127.0.0.1")])
        save_settings(settings, path)
    return Config.load(path)


def _dotted(loc: tuple) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        else:
            parts.append(str(item))
    return ".".join(parts)


def _line_of(text: str, loc: tuple) -> str:
    """Best effort ':LINE' of the offending key, for a message a person can act on."""
    key = next((str(k) for k in reversed(loc) if isinstance(k, str)), None)
    if not key:
        return ""
    section = str(loc[0]) if len(loc) > 1 else None
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        header = re.match(r"^\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?", stripped)
        if header:
            current = header.group(1)
            if len(loc) == 1 and current == key:
                return f":{number}"
            continue
        if re.match(rf"^{re.escape(key)}\s*=", stripped) and (section is None or current == section):
            return f":{number}"
    return ""

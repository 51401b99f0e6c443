"""The `tuimail` command (DESIGN.md "Public interface").

    tuimail [--config PATH]                 the monitor: attached to a running `serve`, else the servers in-process
    tuimail serve                           the servers, headless (a service: one per config)
    tuimail status                          the running server: listeners, sessions, uptime, queue
    tuimail session list|kill ID            live sessions of the running server
    tuimail service install [--user NAME] [--print]   a systemd unit for `tuimail serve`
    tuimail setup --domain NAME --admin ... the installer without a screen (first run only)
    tuimail check                           validate the config and print the effective settings
    tuimail domain add|list|del|primary ... hosted domains (kept in config.toml)
    tuimail account add|list|set|del ...    accounts (kept in data_dir/accounts.json)
    tuimail log show [--user ADDRESS] ...   whole session blocks from the protocol logs

`account` and `domain` go through the running server when there is one (a single writer of
accounts.json and config.toml), and edit the files directly when none runs.
Every problem is one line on stderr naming it, and a non-zero exit; never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from dataclasses import asdict, replace
from pathlib import Path

from tuimail import __version__, cli_teaching
from tuimail.config import Config, ConfigError, dump_settings, load_or_create
from tuimail.core.addresses import AddressError, split_address
from tuimail.core.directory import Directory, DirectoryError
from tuimail.core.logblocks import PROTOCOLS
from tuimail.core.passwords import WeakPassword
from tuimail.outbound import admin as queue_admin
from tuimail.outbound import relaypass
from tuimail.outbound.admin import QueueError

EXIT_USAGE, EXIT_FAILED = 2, 1


class CommandError(Exception):
    """A problem to report in one line."""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS, metavar="PATH",
                        help="config file (default: ./config.toml, else $XDG_CONFIG_HOME/tuimail/config.toml)")
    parser = argparse.ArgumentParser(prog="tuimail", parents=[common],
                                     description="A teaching mail server: SMTP, POP3 and IMAP4rev1 with a terminal UI.")
    parser.add_argument("--version", action="version", version=f"tuimail {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", parents=[common], help="run the servers headless (stop with Ctrl+C or SIGTERM)")
    sub.add_parser("check", parents=[common], help="validate the config and print the effective settings")
    sub.add_parser("status", parents=[common], help="the running server: listeners, sessions, uptime, queue")
    session = sub.add_parser("session", parents=[common], help="live sessions of the running server").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    session.add_parser("list", parents=[common], help="list live sessions")
    s_kill = session.add_parser("kill", parents=[common], help="close a live session (the client is told 421 / -ERR / BYE)")
    s_kill.add_argument("sid", metavar="ID", type=int, help="the session id (`tuimail session list`)")
    service = sub.add_parser("service", parents=[common], help="run tuimail as a system service").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    s_install = service.add_parser("install", parents=[common], help="write a systemd unit for `tuimail serve`")
    s_install.add_argument("--user", metavar="NAME", help="the user the service runs as (default: you, or $SUDO_USER)")
    s_install.add_argument("--print", dest="print_only", action="store_true", help="write the unit to stdout instead")
    setup = sub.add_parser("setup", parents=[common], help="first run: the group's domain and its first administrator")
    setup.add_argument("--domain", required=True, metavar="NAME", help="the mail domain (becomes the primary domain)")
    setup.add_argument("--ip", default="127.0.0.1", metavar="ADDR", help="the domain's IP address (default 127.0.0.1)")
    setup.add_argument("--hostname", default="", metavar="NAME", help="name in greetings and Received: (default mail.<domain>)")
    setup.add_argument("--admin", required=True, metavar="MAILBOX", help="the first administrator's mailbox name")
    setup.add_argument("--full-name", default="", metavar="TEXT", help="the administrator's full name")
    setup.add_argument("--language", default="", metavar="en|ru",
                       help="[server] language: the monitor, the notes and the log files' own phrases (default: as configured)")
    setup.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    setup.add_argument("--weak-passwords", action="store_true",
                       help="allow simple passwords ([policy] require_strong_passwords = false)")

    domain = sub.add_parser("domain", parents=[common], help="hosted domains").add_subparsers(dest="action", metavar="ACTION", required=True)
    d_add = domain.add_parser("add", parents=[common], help="host a new domain")
    d_add.add_argument("name")
    d_add.add_argument("--ip", default="127.0.0.1", help="the domain's IP address (default 127.0.0.1)")
    d_add.add_argument("--primary", action="store_true", help="make it the primary domain (bare mailbox names mean it)")
    d_primary = domain.add_parser("primary", parents=[common], help="make a domain the primary one (bare mailbox names mean it)")
    d_primary.add_argument("name")
    domain.add_parser("list", parents=[common], help="list hosted domains")
    d_del = domain.add_parser("del", parents=[common], help="stop hosting a domain (it must have no accounts)")
    d_del.add_argument("name")
    d_set = domain.add_parser("set", parents=[common], help="change a domain's settings")
    d_set.add_argument("name")
    d_set.add_argument("--catch-all", metavar="ADDRESS", help="where mail to unknown mailboxes goes (\"\" = refuse it)")
    d_dkim = domain.add_parser("dkim", parents=[common], help="print the DNS TXT record of the domain's DKIM key (made on first use)")
    d_dkim.add_argument("name")

    alias = sub.add_parser("alias", parents=[common], help="aliases and distribution lists").add_subparsers(dest="action", metavar="ACTION", required=True)
    al_add = alias.add_parser("add", parents=[common], help="make ADDRESS deliver to one or more targets (local or remote)")
    al_add.add_argument("address")
    al_add.add_argument("targets", nargs="+", metavar="TARGET")
    alias.add_parser("list", parents=[common], help="list aliases")
    al_del = alias.add_parser("del", parents=[common], help="delete an alias")
    al_del.add_argument("address")

    account = sub.add_parser("account", parents=[common], help="accounts").add_subparsers(dest="action", metavar="ACTION", required=True)
    a_add = account.add_parser("add", parents=[common], help="create an account")
    a_add.add_argument("address", help="mailbox@domain")
    a_add.add_argument("--full-name", default="")
    a_add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    a_add.add_argument("--no-pop", action="store_true", help="refuse POP3 access")
    a_add.add_argument("--no-imap", action="store_true", help="refuse IMAP access")
    a_add.add_argument("--admin", action="store_true", help="administrator (receives postmaster mail)")
    a_add.add_argument("--notes", default="")
    account.add_parser("list", parents=[common], help="list accounts")
    a_set = account.add_parser("set", parents=[common], help="change an account")
    a_set.add_argument("address")
    a_set.add_argument("--full-name")
    a_set.add_argument("--password-stdin", action="store_true", help="set a new password read from stdin")
    a_set.add_argument("--pop", dest="pop", action=argparse.BooleanOptionalAction, default=None, help="allow POP3")
    a_set.add_argument("--imap", dest="imap", action=argparse.BooleanOptionalAction, default=None, help="allow IMAP")
    a_set.add_argument("--admin", dest="admin", action=argparse.BooleanOptionalAction, default=None, help="administrator")
    a_set.add_argument("--notes")
    a_set.add_argument("--forward", metavar="TARGET", help="forward mail to TARGET (\"\" stops forwarding)")
    a_set.add_argument("--keep-copy", dest="keep_copy", action=argparse.BooleanOptionalAction, default=None,
                       help="with --forward: also keep a copy here (default yes)")
    a_set.add_argument("--quota", metavar="SIZE", help="mailbox quota, e.g. 100M, 2G, 500K (0 = no limit)")
    a_del = account.add_parser("del", parents=[common], help="delete an account (its mail is kept unless --delete-mail)")
    a_del.add_argument("address")
    a_del.add_argument("--delete-mail", action="store_true", help="also delete the account's mail")

    log = sub.add_parser("log", parents=[common], help="the protocol logs").add_subparsers(dest="action", metavar="ACTION", required=True)
    l_show = log.add_parser("show", parents=[common], help="print whole session blocks, exactly as in the files, newest last")
    l_show.add_argument("--user", metavar="ADDRESS", help="sessions that logged in as (or, SMTP, sent mail from) ADDRESS; a bare name means the primary domain")
    l_show.add_argument("--session", metavar="N", type=int, help="the session with this number (as in `Session N;`)")
    l_show.add_argument("--protocol", choices=PROTOCOLS, help="only this protocol's log")
    l_show.add_argument("--explain", action="store_true", help="each command's and reply's note (meaning and RFC section) under its line")
    l_show.add_argument("--since", metavar="WHEN", help="sessions that ended at or after WHEN: '2026-11-29 14:00', '14:00', or an age: 30m, 2h, 1d")
    cli_teaching.add_parsers(sub, common, account)
    queue = sub.add_parser("queue", parents=[common], help="the outbound queue").add_subparsers(dest="action", metavar="ACTION", required=True)
    queue.add_parser("list", parents=[common], help="list waiting recipients")
    q_show = queue.add_parser("show", parents=[common], help="one message: envelope, recipients, headers")
    q_show.add_argument("id")
    q_retry = queue.add_parser("retry", parents=[common], help="try now (one message, or all)")
    q_retry.add_argument("id", nargs="?")
    q_del = queue.add_parser("delete", parents=[common], help="remove a message without a bounce")
    q_del.add_argument("id")
    q_bounce = queue.add_parser("bounce", parents=[common], help="give up on a message and bounce it to the sender")
    q_bounce.add_argument("id")

    outbound = sub.add_parser("outbound", parents=[common], help="outbound delivery").add_subparsers(dest="action", metavar="ACTION", required=True)
    o_pw = outbound.add_parser("relay-password", parents=[common], help="set the smarthost's AUTH password (stored 0600 in data_dir)")
    o_pw.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_or_create(getattr(args, "config", None))
        return COMMANDS[(args.command, getattr(args, "action", None))](config, args)
    except (ConfigError, CommandError, cli_teaching.CommandError, DirectoryError, AddressError, WeakPassword,
            QueueError) as e:
        print(f"tuimail: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `tuimail session list | head`
        sys.stderr.close()
        return 0


# ----- the running server -----------------------------------------------------------------------

NOT_RUNNING = object()


def through_server(config: Config, command: str, **args):
    """Run `command` in the server running on `config` (over its control socket), or NOT_RUNNING."""
    from tuimail.control.client import CommandError as Refused, ServerGone
    from tuimail.control.connect import running_server

    if running_server(config) is None:
        return NOT_RUNNING
    from tuimail.control.remote import SocketClient

    async def call():
        client = SocketClient(config, role="cli", subscribe=False)
        try:
            return await client.call(command, **args)
        finally:
            await client.close()

    try:
        return asyncio.run(call())
    except (Refused, ServerGone) as e:
        raise CommandError(str(e)) from None


def needs_server(config: Config, command: str, **args):
    result = through_server(config, command, **args)
    if result is NOT_RUNNING:
        raise CommandError(f"no tuimail server is running on {config.path} (start one: tuimail serve)")
    return result


def cmd_status(config: Config, args: argparse.Namespace) -> int:
    from tuimail.tui.text import duration

    status = needs_server(config, "status")
    print(f"tuimail {status['version']} on {status['hostname']}, pid {status['pid']}, up {duration(status['uptime'])}")
    print(f"config     {status['config']}")
    listeners = "  ".join(f"{name.upper()} :{port} {state}" for name, port, state in status["listeners"])
    print(f"listeners  {listeners or 'none'}")
    sessions = status["sessions"]
    by_protocol = ", ".join(f"{p} {n}" for p, n in sorted(sessions.items()))
    print(f"sessions   {sum(sessions.values())} live" + (f" ({by_protocol})" if by_protocol else ""))
    queue = status.get("queue")
    print(f"queue      {'-' if queue is None else f'{queue} message(s)'}")
    return 0


def cmd_session_list(config: Config, args: argparse.Namespace) -> int:
    import time

    from tuimail.tui.text import duration

    rows = []
    for s in needs_server(config, "session.list"):
        rows.append((str(s["sid"]), s["protocol"].label, f"{s['peer_host']}:{s['peer_port']}", s.get("user") or "",
                     s["state"], f"{s['started']:%H:%M:%S}", duration(time.monotonic() - s["last_activity"]),
                     str(s["bytes_in"]), str(s["bytes_out"]), (s.get("last_command") or "")[:40]))
    print_table(("ID", "PROTO", "PEER", "USER", "STATE", "STARTED", "IDLE", "IN", "OUT", "LAST COMMAND"), rows)
    return 0


def cmd_session_kill(config: Config, args: argparse.Namespace) -> int:
    if not needs_server(config, "session.kill", sid=args.sid):
        raise CommandError(f"session {args.sid} is not live (see: tuimail session list)")
    print(f"session {args.sid} killed")
    return 0


def cmd_service_install(config: Config, args: argparse.Namespace) -> int:
    import os

    from tuimail.service import UNIT_DIR, UNIT_NAME, systemctl_hint, unit_text

    user = args.user or os.environ.get("SUDO_USER") or getpass.getuser()
    if not user or any(c.isspace() or c in ":/" for c in user):
        raise CommandError(f"--user {user!r}: not a user name")
    text = unit_text(config, user)
    if args.print_only:
        print(text, end="")
        return 0
    path = UNIT_DIR / UNIT_NAME
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise CommandError(f"cannot write {path}: {e.strerror or e} (run it with sudo, or use --print > FILE)") from None
    print(systemctl_hint(path))
    return 0


# ----- servers ----------------------------------------------------------------------------------

def cmd_ui(config: Config, args: argparse.Namespace) -> int:
    try:
        from tuimail.tui import run_tui
    except ImportError:
        return cmd_serve(config, args)
    return run_tui(config)


def cmd_serve(config: Config, args: argparse.Namespace) -> int:
    from tuimail.control.serve import serve

    return asyncio.run(serve(config))


def cmd_check(config: Config, args: argparse.Namespace) -> int:
    directory = Directory(config)  # reads accounts.json: a broken file is reported here
    settings = config.settings
    print(f"# {config.path} is valid")
    print(f"# data_dir = {config.data_dir}")
    print(f"# log_dir  = {config.log_dir}")
    listeners = ", ".join(f"{n} {settings.ports.address}:{p}" for n, p in settings.ports.listeners().items()) or "none"
    print(f"# listeners: {listeners}")
    print(f"# {len(settings.domains)} domain(s), {len(directory.accounts())} account(s)")
    low = [f"{n} ({p})" for n, p in settings.ports.listeners().items() if p < 1024]
    if low:
        print(f"# note: {', '.join(low)} below 1024 need root or CAP_NET_BIND_SERVICE")
    print(dump_settings(settings), end="")
    return 0


def cmd_setup(config: Config, args: argparse.Namespace) -> int:
    from tuimail.core.setup import SetupRequest, checked, refuse_if_set_up, run_setup

    directory = Directory(config)
    request = SetupRequest(args.domain, args.admin, "", args.ip, args.hostname, args.full_name, not args.weak_passwords,
                           args.language)
    refuse_if_set_up(directory)  # refused, or a bad domain or mailbox, before asking for a password
    checked(request, password=False)
    request = replace(request, password=read_password(args.password_stdin))
    account = through_server(config, "setup.run", **asdict(request))  # a running server writes the files
    if account is NOT_RUNNING:
        account = run_setup(directory, request)
    settings = Config.load(config.path).settings
    print(f"set up: domain {account.domain} (primary, {settings.domain(account.domain).ip}), hostname "
          f"{settings.server.hostname}, administrator {account.address}, language {settings.server.language}; "
          "start the server with: tuimail")
    return 0


# ----- domains ----------------------------------------------------------------------------------

def cmd_domain_add(config: Config, args: argparse.Namespace) -> int:
    domain = through_server(config, "domain.add", name=args.name, ip=args.ip, primary=args.primary)
    if domain is NOT_RUNNING:
        domain = Directory(config).add_domain(args.name, args.ip, primary=args.primary)
    print(f"domain {domain.name} added ({domain.ip}){', the primary domain' if args.primary else ''}")
    return 0


def cmd_domain_primary(config: Config, args: argparse.Namespace) -> int:
    domain = through_server(config, "domain.primary", name=args.name)
    if domain is NOT_RUNNING:
        domain = Directory(config).set_primary(args.name)
    print(f"{domain.name} is now the primary domain: a bare name such as `user tatareva` means tatareva@{domain.name}")
    return 0


def cmd_domain_list(config: Config, args: argparse.Namespace) -> int:
    listed = through_server(config, "domain.list")
    primary = through_server(config, "domain.primary_name") if listed is not NOT_RUNNING else NOT_RUNNING
    if listed is NOT_RUNNING or primary is NOT_RUNNING:
        directory = Directory(config)
        listed = [(d, len(directory.accounts(d.name))) for d in directory.domains]
        primary = directory.primary_domain
    rows = [(d.name, d.ip, str(count), "yes" if d.name == primary else "") for d, count in listed]
    print_table(("DOMAIN", "IP", "ACCOUNTS", "PRIMARY"), rows)
    return 0


def cmd_domain_del(config: Config, args: argparse.Namespace) -> int:
    if through_server(config, "domain.delete", name=args.name) is NOT_RUNNING:
        Directory(config).delete_domain(args.name)
    print(f"domain {args.name.lower()} deleted")
    return 0


# ----- accounts ---------------------------------------------------------------------------------

def read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CommandError("--password-stdin: nothing on standard input")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise CommandError("no password given: use --password-stdin (e.g. echo 'Secret123' | tuimail account add ...)")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise CommandError("the two passwords differ")
    return first


def cmd_account_add(config: Config, args: argparse.Namespace) -> int:
    directory = Directory(config)
    mailbox, domain = split_address(args.address)  # name the bad address before asking for a password
    if not directory.hosts(domain):
        raise CommandError(f"domain {domain} is not hosted here (add it with: tuimail domain add {domain})")
    if directory.get(f"{mailbox}@{domain}"):
        raise CommandError(f"account {mailbox}@{domain} already exists")
    password = read_password(args.password_stdin)
    fields = dict(full_name=args.full_name, pop=not args.no_pop, imap=not args.no_imap, admin=args.admin, notes=args.notes)
    account = through_server(config, "account.add", address=args.address, password=password, **fields)
    if account is NOT_RUNNING:  # no server: this process is the one writer of accounts.json
        account = directory.add_account(args.address, password, **fields)
    print(f"account {account.address} added")
    return 0


def cmd_account_list(config: Config, args: argparse.Namespace) -> int:
    accounts = through_server(config, "account.list")
    if accounts is NOT_RUNNING:
        accounts = Directory(config).accounts()
    yes = {True: "yes", False: "no"}

    def forward(a) -> str:
        return (a.forward + ("" if a.keep_copy else " (no copy)")) if a.forward else ""

    rows = [
        (a.address, a.full_name, yes[a.pop], yes[a.imap], yes[a.admin], human_size(a.quota) if a.quota else "",
         forward(a), a.created[:10], a.notes.replace("\n", " ")[:40])
        for a in accounts
    ]
    print_table(("ADDRESS", "FULL NAME", "POP", "IMAP", "ADMIN", "QUOTA", "FORWARD", "CREATED", "NOTES"), rows)
    return 0


def cmd_account_set(config: Config, args: argparse.Namespace) -> int:
    changes = {k: getattr(args, k) for k in ("full_name", "pop", "imap", "admin", "notes", "forward", "keep_copy")
               if getattr(args, k) is not None}
    if args.quota is not None:
        changes["quota"] = parse_size(args.quota)
    password = read_password(True) if args.password_stdin else None
    if not changes and password is None:
        raise CommandError("nothing to change: give --full-name, --password-stdin, --[no-]pop, --[no-]imap, --[no-]admin, "
                           "--notes, --forward, --[no-]keep-copy or --quota")
    account = through_server(config, "account.update", address=args.address, password=password, **changes)
    if account is NOT_RUNNING:
        account = Directory(config).update_account(args.address, password=password, **changes)
    print(f"account {account.address} updated")
    return 0


def parse_size(text: str) -> int:
    """`100M`, `2G`, `500K`, `1048576` -> bytes (binary units, as mail clients show sizes)."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE)
    if not m:
        raise CommandError(f"--quota: {text!r} is not a size (e.g. 100M, 2G, 500K, 0 = no limit)")
    factor = 1024 ** " KMGT".index(m.group(2).upper() or " ")
    return int(float(m.group(1)) * factor)


def cmd_account_del(config: Config, args: argparse.Namespace) -> int:
    account = through_server(config, "account.delete", address=args.address, delete_mail=args.delete_mail)
    if account is NOT_RUNNING:
        account = Directory(config).delete_account(args.address)
        if args.delete_mail:
            from tuimail.store import MailStore

            MailStore(config.data_dir).delete_mail(account.address)
    if args.delete_mail:
        print(f"account {account.address} and its mail deleted")
    else:
        print(f"account {account.address} deleted (its mail is kept in {config.data_dir / account.domain / account.mailbox})")
    return 0


# ----- logs -------------------------------------------------------------------------------------

def cmd_log_show(config: Config, args: argparse.Namespace) -> int:
    from tuimail.core import logblocks

    try:
        since = logblocks.parse_since(args.since) if args.since else None
    except ValueError as e:
        raise CommandError(str(e)) from None
    user = is_user = None
    if args.user:
        directory = Directory(config)
        user = directory.resolve_login(args.user) or args.user.lower()
        is_user = lambda block, address: address in block.users or any(  # noqa: E731
            (directory.resolve_login(s) or s) == address for s in block.senders)
    blocks = logblocks.select(
        logblocks.read_blocks(config.log_dir, [args.protocol] if args.protocol else PROTOCOLS),
        user=user, session=args.session, protocol=args.protocol, since=since, is_user=is_user,
    )
    if not blocks:
        wanted = [f"user {user}" if user else "", f"session {args.session}" if args.session is not None else "",
                  args.protocol.upper() if args.protocol else "", f"since {args.since}" if args.since else ""]
        what = ", ".join(w for w in wanted if w)
        raise CommandError(f"no session found in {config.log_dir}" + (f" for {what}" if what else ""))
    out = sys.stdout.buffer
    try:
        for block in blocks:
            out.write(explain_block(block, config) if getattr(args, "explain", False) else block.raw)
        out.flush()
    except BrokenPipeError:  # `tuimail log show | head`
        sys.stderr.close()
    return 0


def explain_block(block, config: Config) -> bytes:
    """The block with each line's note under it (`log show --explain`), in `[server] language`."""
    from tuimail import i18n
    from tuimail.teaching.annotate import explained

    i18n.set_language(config.settings.server.language)
    return ("\n".join(explained(block.protocol, block.text.splitlines(), i18n.language)) + "\n").encode("utf-8")


def human_size(size: int) -> str:
    for unit, factor in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size >= factor:
            return f"{size / factor:g}{unit}"
    return f"{size}B"


# ----- aliases, catch-all, DKIM -------------------------------------------------------------------

def cmd_alias_add(config: Config, args: argparse.Namespace) -> int:
    targets = through_server(config, "alias.set", address=args.address, targets=args.targets)
    if targets is NOT_RUNNING:
        targets = Directory(config).set_alias(args.address, args.targets)
    print(f"alias {args.address.lower()} -> {', '.join(targets)}")
    return 0


def cmd_alias_list(config: Config, args: argparse.Namespace) -> int:
    rows = [(alias, ", ".join(targets)) for alias, targets in sorted(Directory(config).aliases().items())]
    if not rows:
        print("no aliases")
        return 0
    print_table(("ALIAS", "TARGETS"), rows)
    return 0


def cmd_alias_del(config: Config, args: argparse.Namespace) -> int:
    if through_server(config, "alias.delete", address=args.address) is NOT_RUNNING:
        Directory(config).delete_alias(args.address)
    print(f"alias {args.address.lower()} deleted")
    return 0


def cmd_domain_set(config: Config, args: argparse.Namespace) -> int:
    if args.catch_all is None:
        raise CommandError("nothing to change: give --catch-all ADDRESS")
    domain = through_server(config, "domain.catch_all", name=args.name, address=args.catch_all)
    if domain is NOT_RUNNING:
        domain = Directory(config).set_catch_all(args.name, args.catch_all)
    print(f"domain {domain.name}: catch-all {domain.catch_all or 'off (unknown mailboxes get 550)'}")
    return 0


def cmd_domain_dkim(config: Config, args: argparse.Namespace) -> int:
    from tuimail.outbound import dkim

    directory = Directory(config)
    name = args.name.lower()
    if not directory.hosts(name):
        raise CommandError(f"no domain {name}")
    selector = config.settings.outbound.dkim_selector
    record = dkim.DkimKeys(config.data_dir).txt_record(name)
    print(f"{selector}._domainkey.{name}. IN TXT {dkim.quote_txt(record)}")
    return 0


# ----- the outbound queue ----------------------------------------------------------------------

def _when(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600}h"


def cmd_queue_list(config: Config, args: argparse.Namespace) -> int:
    import time

    now = time.time()
    found = through_server(config, "queue.list")  # the runner's own state when a server runs
    if found is NOT_RUNNING:
        found = queue_admin.rows(queue_admin.load(config.data_dir), now)
    rows = [(r.id, _when(r.age), r.mail_from, r.recipient, r.state, str(r.attempts),
             "now" if r.next_try <= now or r.state != "queued" else f"in {_when(r.next_try - now)}",
             r.next_hop, r.last_reply[:60]) for r in found]
    if not rows:
        print("the queue is empty")
        return 0
    print_table(("ID", "AGE", "FROM", "RECIPIENT", "STATE", "TRIES", "NEXT TRY", "NEXT HOP", "LAST REPLY"), rows)
    return 0


def cmd_queue_show(config: Config, args: argparse.Namespace) -> int:
    from datetime import datetime

    queue_admin.check_id(args.id)
    shown = through_server(config, "queue.show", qid=args.id)  # the runner's own state when a server runs
    if shown is NOT_RUNNING:
        m = queue_admin.get(config.data_dir, args.id)
        headers = queue_admin.headers(config.data_dir, m.id)
    elif shown is None:
        raise CommandError(f"no message {args.id} in the queue (see: tuimail queue list)")
    else:
        m, headers = shown["message"], shown["headers"]
    print(f"id:         {m.id}")
    print(f"from:       <{m.mail_from}>")
    print(f"queued:     {datetime.fromtimestamp(m.created):%Y-%m-%d %H:%M:%S}")
    print(f"size:       {m.size} bytes{'  (8-bit)' if m.eight_bit else ''}{'  (SMTPUTF8)' if m.smtputf8 else ''}")
    for r in m.recipients:
        when = f", next try {datetime.fromtimestamp(r.next_try):%H:%M:%S}" if r.state.value == "queued" and r.next_try else ""
        print(f"recipient:  <{r.address}> {r.state.value}, {r.attempts} attempt(s){when}")
        if r.next_hop:
            print(f"  next hop: {r.next_hop}")
        if r.last_reply:
            print(f"  reply:    {r.last_reply}")
    print()
    print(headers)
    return 0


def cmd_queue_retry(config: Config, args: argparse.Namespace) -> int:
    count = through_server(config, "queue.retry", qid=args.id)
    if count is NOT_RUNNING:
        count = queue_admin.retry(config.data_dir, args.id)
    print(f"{count} recipient(s) will be tried now")
    return 0


def cmd_queue_delete(config: Config, args: argparse.Namespace) -> int:
    m = queue_admin.get(config.data_dir, args.id)  # names a bad or unknown id in one line
    done = through_server(config, "queue.delete", qid=m.id)
    if done is NOT_RUNNING:
        m = queue_admin.delete(config.data_dir, args.id)
    elif not done:
        raise CommandError(f"{m.id} is being delivered right now; try again in a moment")
    print(f"{m.id} deleted ({len(m.pending)} recipient(s) dropped, no bounce)")
    return 0


def cmd_queue_bounce(config: Config, args: argparse.Namespace) -> int:
    m = queue_admin.get(config.data_dir, args.id)
    done = through_server(config, "queue.bounce", qid=m.id)
    if done is NOT_RUNNING:
        m = queue_admin.bounce(config.data_dir, args.id)
    elif not done:
        raise CommandError(f"{m.id} is being delivered right now, or has no recipient waiting")
    to = f"to <{m.mail_from}>" if m.mail_from else "(null sender: no bounce is sent)"
    print(f"{m.id} given up; a bounce goes {to}")
    return 0


def cmd_outbound_relay_password(config: Config, args: argparse.Namespace) -> int:
    if not args.password_stdin and not sys.stdin.isatty():
        raise CommandError("use --password-stdin (e.g. echo 'secret' | tuimail outbound relay-password --password-stdin)")
    if args.password_stdin:
        password = read_password(True)
    else:
        password = getpass.getpass("Relay password: ")
    try:
        path = relaypass.save(config.data_dir, password)
    except ValueError as e:
        raise CommandError(str(e)) from None
    print(f"relay password stored in {path} (mode 0600)")
    return 0


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


COMMANDS = {
    (None, None): cmd_ui,
    ("serve", None): cmd_serve,
    ("check", None): cmd_check,
    ("status", None): cmd_status,
    ("session", "list"): cmd_session_list,
    ("session", "kill"): cmd_session_kill,
    ("service", "install"): cmd_service_install,
    ("setup", None): cmd_setup,
    ("domain", "add"): cmd_domain_add,
    ("domain", "primary"): cmd_domain_primary,
    ("domain", "list"): cmd_domain_list,
    ("domain", "del"): cmd_domain_del,
    ("domain", "set"): cmd_domain_set,
    ("domain", "dkim"): cmd_domain_dkim,
    ("alias", "add"): cmd_alias_add,
    ("alias", "list"): cmd_alias_list,
    ("alias", "del"): cmd_alias_del,
    ("account", "add"): cmd_account_add,
    ("account", "list"): cmd_account_list,
    ("account", "set"): cmd_account_set,
    ("account", "del"): cmd_account_del,
    ("log", "show"): cmd_log_show,
    **cli_teaching.COMMANDS,
    ("queue", "list"): cmd_queue_list,
    ("queue", "show"): cmd_queue_show,
    ("queue", "retry"): cmd_queue_retry,
    ("queue", "delete"): cmd_queue_delete,
    ("queue", "bounce"): cmd_queue_bounce,
    ("outbound", "relay-password"): cmd_outbound_relay_password,
}

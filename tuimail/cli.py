"""The `tuimail` command (DESIGN.md "Public interface").

    tuimail [--config PATH]                 the TUI with every server running in-process
    tuimail serve                           the same servers, headless
    tuimail check                           validate the config and print the effective settings
    tuimail domain add|list|del ...         hosted domains (kept in config.toml)
    tuimail account add|list|set|del ...    accounts (kept in data_dir/accounts.json)
    tuimail log show [--user ADDRESS] ...   whole session blocks from the protocol logs

Every problem is one line on stderr naming it, and a non-zero exit; never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path

from tuimail import __version__, cli_teaching
from tuimail.config import Config, ConfigError, dump_settings, load_or_create
from tuimail.core.addresses import AddressError, split_address
from tuimail.core.directory import Directory, DirectoryError
from tuimail.core.logblocks import PROTOCOLS
from tuimail.core.passwords import WeakPassword

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

    domain = sub.add_parser("domain", parents=[common], help="hosted domains").add_subparsers(dest="action", metavar="ACTION", required=True)
    d_add = domain.add_parser("add", parents=[common], help="host a new domain")
    d_add.add_argument("name")
    d_add.add_argument("--ip", default="127.0.0.1", help="the domain's IP address (default 127.0.0.1)")
    domain.add_parser("list", parents=[common], help="list hosted domains")
    d_del = domain.add_parser("del", parents=[common], help="stop hosting a domain (it must have no accounts)")
    d_del.add_argument("name")

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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_or_create(getattr(args, "config", None))
        return COMMANDS[(args.command, getattr(args, "action", None))](config, args)
    except (ConfigError, CommandError, cli_teaching.CommandError, DirectoryError, AddressError, WeakPassword) as e:
        print(f"tuimail: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


# ----- servers ----------------------------------------------------------------------------------

def cmd_ui(config: Config, args: argparse.Namespace) -> int:
    try:
        from tuimail.tui import run_tui
    except ImportError:
        return cmd_serve(config, args)
    return run_tui(config)


def cmd_serve(config: Config, args: argparse.Namespace) -> int:
    from tuimail.servers.headless import serve

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


# ----- domains ----------------------------------------------------------------------------------

def cmd_domain_add(config: Config, args: argparse.Namespace) -> int:
    domain = Directory(config).add_domain(args.name, args.ip)
    print(f"domain {domain.name} added ({domain.ip})")
    return 0


def cmd_domain_list(config: Config, args: argparse.Namespace) -> int:
    directory = Directory(config)
    rows = [(d.name, d.ip, str(len(directory.accounts(d.name)))) for d in directory.domains]
    print_table(("DOMAIN", "IP", "ACCOUNTS"), rows)
    return 0


def cmd_domain_del(config: Config, args: argparse.Namespace) -> int:
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
    account = directory.add_account(
        args.address, password, full_name=args.full_name, pop=not args.no_pop, imap=not args.no_imap,
        admin=args.admin, notes=args.notes,
    )
    print(f"account {account.address} added")
    return 0


def cmd_account_list(config: Config, args: argparse.Namespace) -> int:
    yes = {True: "yes", False: "no"}
    rows = [
        (a.address, a.full_name, yes[a.pop], yes[a.imap], yes[a.admin], a.created[:10], a.notes.replace("\n", " ")[:40])
        for a in Directory(config).accounts()
    ]
    print_table(("ADDRESS", "FULL NAME", "POP", "IMAP", "ADMIN", "CREATED", "NOTES"), rows)
    return 0


def cmd_account_set(config: Config, args: argparse.Namespace) -> int:
    changes = {k: getattr(args, k) for k in ("full_name", "pop", "imap", "admin", "notes") if getattr(args, k) is not None}
    password = read_password(True) if args.password_stdin else None
    if not changes and password is None:
        raise CommandError("nothing to change: give --full-name, --password-stdin, --[no-]pop, --[no-]imap, --[no-]admin or --notes")
    account = Directory(config).update_account(args.address, password=password, **changes)
    print(f"account {account.address} updated")
    return 0


def cmd_account_del(config: Config, args: argparse.Namespace) -> int:
    account = Directory(config).delete_account(args.address)
    if args.delete_mail:
        from tuimail.store import MailStore

        MailStore(config.data_dir).delete_mail(account.address)
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


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


COMMANDS = {
    (None, None): cmd_ui,
    ("serve", None): cmd_serve,
    ("check", None): cmd_check,
    ("domain", "add"): cmd_domain_add,
    ("domain", "list"): cmd_domain_list,
    ("domain", "del"): cmd_domain_del,
    ("account", "add"): cmd_account_add,
    ("account", "list"): cmd_account_list,
    ("account", "set"): cmd_account_set,
    ("account", "del"): cmd_account_del,
    ("log", "show"): cmd_log_show,
    **cli_teaching.COMMANDS,
}

"""The student's report in one step (issue 10 §7): `tuimail lab report ADDRESS` writes the skeleton
of the seed's report, section by section: the aim and the server, then for each protocol the
commands the student used, the exercise checklist and their session blocks exactly as in the log
files, each line's note under it. Markdown, in `[server] language`.
"""

from __future__ import annotations

import re

from tuimail.core import logblocks
from tuimail.core.directory import Directory
from tuimail.i18n import N_, _
from tuimail.teaching.annotate import explained, strip_stamp
from tuimail.teaching.exercises import LABELS, PROTOCOLS, Step

_TWO_WORDS = re.compile(r"^(mail\s+from|rcpt\s+to)\b", re.I)
SECTION_TITLES = {"smtp": N_("Working with SMTP"), "pop3": N_("Working with POP3"), "imap": N_("Working with IMAP")}


def student_blocks(log_dir, directory: Directory, address: str) -> list[logblocks.LogBlock]:
    """The student's session blocks in the log files (rotated ones too), oldest first: those that
    logged in as them, or SMTP sessions whose MAIL FROM is them."""
    address = (directory.resolve_login(address) or address).lower()
    return logblocks.select(
        logblocks.read_blocks(log_dir), user=address,
        is_user=lambda block, who: who in block.users or any((directory.resolve_login(s) or s) == who
                                                             for s in block.senders))


def commands_used(kind: str, lines: list[str]) -> list[str]:
    """The commands the client typed, in the order first used, lower case (`mail from`, `select`)."""
    seen: list[str] = []
    for line in lines:
        text = strip_stamp(line)
        if not text.startswith("<-- "):
            continue
        words = text[4:].split()
        if kind == "imap":
            words = words[1:]  # the tag
            if words[:1] and words[0].lower() == "uid" and len(words) > 1:
                words = [f"uid {words[1]}"]
        if not words or words[0] == "*****":
            continue
        two = _TWO_WORDS.match(text[4:].strip())
        verb = re.sub(r"\s+", " ", two.group(1).lower()) if two else words[0].lower().split(":")[0]
        if verb and verb not in seen and re.fullmatch(r"[a-z][a-z ]*", verb):
            seen.append(verb)
    return seen


def render(*, address: str, full_name: str, hostname: str, domain: str, ip: str, steps: list[Step],
           done: dict[str, str], blocks: list[logblocks.LogBlock], language: str) -> str:
    """The report's Markdown."""
    who = f"{full_name} ({address})" if full_name else address
    out = [f"# {_('Lab report: the mail server and its protocols')}", "", f"{_('Student')}: {who}", "",
           f"## 1. {_('Aim')}", "",
           _("To gain practical skills with a mail server and study how the e-mail protocols SMTP, POP3 and IMAP "
             "work together."), "",
           _("The server {host} hosts the domain {domain} ({ip}); the student's mailbox is {address}.").format(
               host=hostname, domain=domain, ip=ip, address=address), ""]
    for number, protocol in enumerate(PROTOCOLS, 2):
        mine = [b for b in blocks if b.kind == protocol]
        out += [f"## {number}. {_(SECTION_TITLES[protocol])}", ""]
        used = []
        for block in mine:
            used += [c for c in commands_used(protocol, block.text.splitlines()) if c not in used]
        if used:
            out += [_("Commands used: {commands}.").format(commands=", ".join(used)), ""]
        out += [f"{_('Exercises')}:", ""]
        for step in (s for s in steps if s.protocol == protocol):
            when = done.get(step.id)
            mark = f"[x] {step.label} ({when[:16].replace('T', ' ')})" if when else f"[ ] {step.label}"
            out.append(f"- {mark}")
        out.append("")
        if not mine:
            out += [_("No {protocol} session of this student in the logs.").format(protocol=LABELS[protocol]), ""]
            continue
        out += [_("The {protocol} sessions as the server wrote them in its log, with a note under each line:").format(
            protocol=LABELS[protocol]), ""]
        for block in mine:
            out += ["```", *explained(block.protocol, block.text.splitlines(), language), "```", ""]
    out += [f"## {len(PROTOCOLS) + 2}. {_('Conclusions')}", "", "...", ""]
    return "\n".join(out)

"""The base subject of RFC 5256 §2.1, shared by SORT (SUBJECT) and THREAD (both algorithms).

`base_subject(decoded)` takes a Subject already decoded from RFC 2047 (step 1's first half) and
returns (base subject in upper case for i;ascii-casemap comparison, whether it was a reply or a
forward). "Reply or forward" means a `Re:`/`Fw:`/`Fwd:` leader, a `(fwd)` trailer or a `[fwd: ...]`
wrapper was removed; THREAD=REFERENCES step 5 needs to know it.
"""

from __future__ import annotations

import re

_WSP = re.compile(r"[ \t\r\n]+")
# subj-trailer = "(fwd)" / WSP
_TRAILER = re.compile(r"(?:\(fwd\)|[ \t])$", re.IGNORECASE)
# subj-blob = "[" *BLOBCHAR "]" *WSP ; BLOBCHAR = any CHAR except "[" and "]"
_BLOB = r"\[[^\[\]]*\][ \t]*"
# subj-leader = (*subj-blob subj-refwd) / WSP ; subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
_LEADER = re.compile(rf"^(?:(?:{_BLOB})*(?:re|fwd?)[ \t]*(?:{_BLOB})?:|[ \t])", re.IGNORECASE)
_LEADING_BLOB = re.compile(rf"^{_BLOB}")
# subj-fwd = subj-fwd-hdr subj-base subj-fwd-trl ; subj-fwd-hdr = "[fwd:" ; subj-fwd-trl = "]"
_FWD_HDR = "[FWD:"


def base_subject(decoded: str) -> tuple[str, bool]:
    # (1) tabs and continuations become spaces, runs of spaces one space
    subject = _WSP.sub(" ", decoded)
    reply = False
    while True:
        # (2) remove trailing "(fwd)" and whitespace, as long as any is left
        while True:
            trimmed = _TRAILER.sub("", subject)
            if trimmed == subject:
                break
            reply |= trimmed != subject.rstrip(" \t")  # a "(fwd)" was removed, not just a space
            subject = trimmed
        # (3)-(5) remove leaders, and a leading blob when something remains after it
        while True:
            m = _LEADER.match(subject)
            if m:
                reply |= m.group(0) not in (" ", "\t")
                subject = subject[m.end():]
                continue
            m = _LEADING_BLOB.match(subject)
            if m and subject[m.end():]:
                subject = subject[m.end():]
                continue
            break
        # (6) "[fwd: ...]" wraps a forwarded subject: unwrap it and start again from (2)
        if subject.upper().startswith(_FWD_HDR) and subject.endswith("]"):
            subject = subject[len(_FWD_HDR):-1]
            reply = True
            continue
        return subject.upper(), reply

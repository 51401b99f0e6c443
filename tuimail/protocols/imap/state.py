"""IMAP connection states and the one table of what each command may do where (RFC 3501 §3, §6).

    NOT_AUTHENTICATED --LOGIN/AUTHENTICATE ok--> AUTHENTICATED --SELECT/EXAMINE ok--> SELECTED
    SELECTED --CLOSE/UNSELECT/failed SELECT--> AUTHENTICATED ; any --LOGOUT--> LOGOUT
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


NA, AUTH, SEL = State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED
ANY = frozenset({NA, AUTH, SEL})
AUTHED = frozenset({AUTH, SEL})

# command -> states where it is valid (RFC 3501 §6.1-§6.4 and the extensions' own sections)
ALLOWED: dict[str, frozenset[State]] = {
    "CAPABILITY": ANY, "NOOP": ANY, "LOGOUT": ANY, "ID": ANY,  # §6.1, RFC 2971
    "STARTTLS": frozenset({NA}), "AUTHENTICATE": frozenset({NA}), "LOGIN": frozenset({NA}),  # §6.2
    "SELECT": AUTHED, "EXAMINE": AUTHED, "CREATE": AUTHED, "DELETE": AUTHED, "RENAME": AUTHED,  # §6.3
    "SUBSCRIBE": AUTHED, "UNSUBSCRIBE": AUTHED, "LIST": AUTHED, "LSUB": AUTHED, "STATUS": AUTHED,
    "APPEND": AUTHED, "NAMESPACE": AUTHED, "ENABLE": AUTHED, "IDLE": AUTHED,  # RFC 2342, 5161, 2177
    "COMPRESS": AUTHED,  # RFC 4978 §3
    "GETQUOTA": AUTHED, "GETQUOTAROOT": AUTHED, "SETQUOTA": AUTHED,  # RFC 9208 §4
    "CHECK": frozenset({SEL}), "CLOSE": frozenset({SEL}), "EXPUNGE": frozenset({SEL}),  # §6.4
    "SEARCH": frozenset({SEL}), "FETCH": frozenset({SEL}), "STORE": frozenset({SEL}),
    "COPY": frozenset({SEL}), "MOVE": frozenset({SEL}), "UNSELECT": frozenset({SEL}),  # RFC 6851, 3691
    "UID COPY": frozenset({SEL}), "UID MOVE": frozenset({SEL}), "UID FETCH": frozenset({SEL}),
    "SORT": frozenset({SEL}), "UID SORT": frozenset({SEL}), "THREAD": frozenset({SEL}),  # RFC 5256
    "UID THREAD": frozenset({SEL}),
    "UID SEARCH": frozenset({SEL}), "UID STORE": frozenset({SEL}), "UID EXPUNGE": frozenset({SEL}),  # RFC 4315
}

# (state, what happened) -> next state
TRANSITIONS: dict[tuple[State, str], State] = {
    (NA, "authenticated"): AUTH,
    (AUTH, "selected"): SEL,
    (SEL, "selected"): SEL,
    (SEL, "select failed"): AUTH,
    (SEL, "closed"): AUTH,
    (NA, "logout"): State.LOGOUT,
    (AUTH, "logout"): State.LOGOUT,
    (SEL, "logout"): State.LOGOUT,
}

# RFC 3501 §7.4.1: no EXPUNGE response while answering FETCH, STORE or SEARCH (UID forms are fine);
# SORT and THREAD answer with sequence numbers as SEARCH does (RFC 5256 §4)
NO_EXPUNGE = frozenset({"FETCH", "STORE", "SEARCH", "SORT", "THREAD"})


def next_state(state: State, happened: str) -> State:
    return TRANSITIONS.get((state, happened), state)

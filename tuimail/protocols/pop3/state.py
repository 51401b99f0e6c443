"""POP3 session states and what each allows (RFC 1939 §3), in one table.

AUTHORIZATION --(USER+PASS or AUTH succeeds)--> TRANSACTION --(QUIT)--> UPDATE.
QUIT in AUTHORIZATION ends the session without entering TRANSACTION (RFC 1939 §6 does not apply).
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"


class Transition(enum.Enum):
    LOGIN = "login"
    QUIT = "quit"


# RFC 1939 §4 and §5, RFC 2449 §5 (CAPA in both states), RFC 2595 §4 (STLS before login),
# RFC 5034 §4 (AUTH before login).
ALLOWED: dict[State, frozenset[str]] = {
    State.AUTHORIZATION: frozenset({"USER", "PASS", "APOP", "AUTH", "CAPA", "STLS", "QUIT"}),
    State.TRANSACTION: frozenset({"STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "QUIT", "TOP", "UIDL", "CAPA"}),
    State.UPDATE: frozenset(),
}

TRANSITIONS: dict[tuple[State, Transition], State] = {
    (State.AUTHORIZATION, Transition.LOGIN): State.TRANSACTION,
    (State.AUTHORIZATION, Transition.QUIT): State.UPDATE,
    (State.TRANSACTION, Transition.QUIT): State.UPDATE,
}

KNOWN_VERBS: frozenset[str] = frozenset().union(*ALLOWED.values())


def allowed(state: State, verb: str) -> bool:
    return verb in ALLOWED[state]


def next_state(state: State, transition: Transition) -> State:
    """The state after `transition`; KeyError for a transition the table does not allow."""
    return TRANSITIONS[(state, transition)]


def wrong_state_reason(state: State, verb: str) -> str:
    """Why `verb` is refused in `state`, in words a student understands."""
    if state is State.AUTHORIZATION:
        return f"{verb} is not valid before login (use USER and PASS first)"
    if state is State.TRANSACTION:
        return f"{verb} is not valid after login (already logged in)"
    return f"{verb} is not valid now: the session is ending"

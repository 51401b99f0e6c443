"""THREAD (RFC 5256 §3): ORDEREDSUBJECT and REFERENCES, over `sort.Sortable` messages.

`thread(algorithm, messages)` returns the nested structure and `render(roots, number)` the response's
text, e.g. `(3 6 (4 23)(44 7 96))`. Every walk is iterative, so a folder of 100,000 messages in one
reply chain cannot hit Python's recursion limit; loops in References are never created (§2, step 1).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tuimail.protocols.imap.sort import Sortable

ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")
_MSG_ID = re.compile(r"<([^<>\s]+@[^<>\s]+)>")


class Node:
    __slots__ = ("message", "parent", "children")

    def __init__(self, message: Sortable | None = None) -> None:
        self.message = message  # None: a dummy (a message we only know of from a reference)
        self.parent: Node | None = None
        self.children: list[Node] = []

    def adopt(self, child: Node) -> None:
        if child.parent is not None:
            child.parent.children.remove(child)
        child.parent = self
        self.children.append(child)

    def is_ancestor_of(self, other: Node) -> bool:
        if not self.children:  # a leaf is nobody's ancestor: the common case costs no walk
            return other is self
        node = other
        while node is not None:
            if node is self:
                return True
            node = node.parent
        return False

    def first_message(self) -> Sortable | None:
        """The message itself, or for a dummy its first child's (children sorted already)."""
        node = self
        while node.message is None and node.children:
            node = node.children[0]
        return node.message


def _date_key(node: Node) -> tuple[float, int]:
    m = node.first_message()
    return (m.sent, m.seq) if m is not None else (0.0, 0)


def thread(algorithm: str, messages: list[Sortable]) -> list[Node]:
    if algorithm == "ORDEREDSUBJECT":
        return _ordered_subject(messages)
    return _references(messages)


# ----- ORDEREDSUBJECT -------------------------------------------------------------------------


def _ordered_subject(messages: list[Sortable]) -> list[Node]:
    """Messages sorted by base subject then sent date; each subject's first message is the parent of
    the rest, and the threads are ordered by the sent date of their first message."""
    ordered = sorted(messages, key=lambda m: (m.subject[0], m.sent, m.seq))
    roots: list[Node] = []
    current_subject = None
    for m in ordered:
        node = Node(m)
        if roots and m.subject[0] == current_subject:
            roots[-1].adopt(node)
            node.parent = roots[-1]
        else:
            roots.append(node)
            current_subject = m.subject[0]
    roots.sort(key=_date_key)
    return roots


# ----- REFERENCES -----------------------------------------------------------------------------


def _references_of(m: Sortable) -> list[str]:
    ids = _MSG_ID.findall(m.msg.structure.header_value("References") or "")
    if not ids:  # §2 step 1(A): else the first msg-id of In-Reply-To
        first = _MSG_ID.search(m.msg.structure.header_value("In-Reply-To") or "")
        ids = [first.group(1)] if first else []
    return ids


def _references(messages: list[Sortable]) -> list[Node]:
    table: dict[str, Node] = {}
    nodes: list[Node] = []
    for m in messages:
        # (1)(A) a message without a valid Message-ID, or with one already taken, stands alone
        found = _MSG_ID.search(m.msg.structure.header_value("Message-ID") or "")
        own_id = found.group(1) if found else None
        node = table.get(own_id) if own_id else None
        if node is None or node.message is not None:
            node = Node(m)
            if own_id and own_id not in table:
                table[own_id] = node
        else:
            node.message = m  # a dummy made from an earlier reference: now we have the message
        nodes.append(node)
        chain = [table.setdefault(ref, Node()) for ref in _references_of(m)]
        # link each reference to the next as parent and child, unless already linked or a loop
        for parent, child in zip(chain, chain[1:]):
            if child.parent is None and parent is not child and not child.is_ancestor_of(parent):
                parent.adopt(child)
        # (1)(B) the last reference becomes the message's parent: any link it had is broken first,
        # and no link is made that would close a loop
        if node.parent is not None:
            node.parent.children.remove(node)
            node.parent = None
        if chain and chain[-1] is not node and not node.is_ancestor_of(chain[-1]):
            chain[-1].adopt(node)
    # (2) the root set: every container without a parent (each one is in the table or is a message)
    roots: list[Node] = []
    seen: set[int] = set()
    for node in [*table.values(), *nodes]:
        if node.parent is None and id(node) not in seen:
            seen.add(id(node))
            roots.append(node)
    # (4) prune dummies
    roots = _prune(roots)
    # (5)(A) order the top level by sent date (a dummy by its first child's, children sorted first)
    for node in _walk(roots):
        node.children.sort(key=_date_key)
    roots.sort(key=_date_key)
    # (5)(B)-(D) gather the top-level threads that share a base subject
    roots = _gather_by_subject(roots)
    # (6) sort every set of siblings by sent date
    for node in _walk(roots):
        node.children.sort(key=_date_key)
    roots.sort(key=_date_key)
    return roots


def _walk(roots: list[Node]):
    stack = list(roots)
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.children)


def _prune(siblings: list[Node], parent: Node | None = None) -> list[Node]:
    """§2 step (4), iteratively: a childless dummy is deleted; a dummy with children is replaced by
    them, except at the root where it stays when it has more than one child."""
    work = [(parent, siblings)]
    result_roots: list[Node] | None = None
    while work:
        owner, nodes = work.pop()
        kept: list[Node] = []
        queue = list(nodes)
        while queue:
            node = queue.pop(0)
            if node.message is None:
                if not node.children:
                    continue
                if owner is not None or len(node.children) == 1:
                    for child in node.children:
                        child.parent = owner
                    queue[0:0] = node.children
                    node.children = []
                    continue
            kept.append(node)
        if owner is None:
            result_roots = kept
            for node in kept:
                node.parent = None
        else:
            owner.children = kept
        for node in kept:
            if node.children:
                work.append((node, node.children))
    return result_roots or []


def _gather_by_subject(roots: list[Node]) -> list[Node]:
    """§2 step (5)(B)-(D): top-level threads with the same base subject are merged."""
    def subject_of(node: Node) -> tuple[str, bool]:
        m = node.first_message() if node.message is None else node.message
        return m.subject if m is not None else ("", False)

    table: dict[str, Node] = {}
    for node in roots:
        subject, reply = subject_of(node)
        if not subject:
            continue
        old = table.get(subject)
        if old is None or (node.message is None and old.message is not None) or (
            old.message is not None and subject_of(old)[1] and not reply
        ):
            table[subject] = node
    result: list[Node] = []
    position: dict[int, int] = {}  # id(node) -> its index in result

    def place(node: Node, index: int | None = None) -> None:
        if index is None:
            index = len(result)
            result.append(node)
        else:
            result[index] = node
        position[id(node)] = index

    for node in roots:
        subject, reply = subject_of(node)
        holder = table.get(subject) if subject else None
        if holder is None or holder is node:
            if node.parent is None:
                place(node)
            continue
        if holder.message is None and node.message is None:  # (i) both dummies
            for child in list(node.children):
                holder.adopt(child)
        elif holder.message is None:  # (ii)
            holder.adopt(node)
        elif reply and not subject_of(holder)[1]:  # (iii) a reply to the holder's thread
            holder.adopt(node)
        else:  # (iv) a new dummy holds both, where the holder was
            dummy = Node()
            place(dummy, position.pop(id(holder), None))
            dummy.adopt(holder)
            dummy.adopt(node)
            table[subject] = dummy
    return [n for n in result if n.parent is None]


def render(roots: list[Node], number: Callable[[Sortable], int]) -> str:
    """The THREAD response text: each thread in parentheses; a single child follows its parent after
    a space, several children each get parentheses of their own (§4: `(3 6 (4 23)(44 7 96))`)."""
    out: list[str] = []
    stack: list[Node | str] = []
    for root in reversed(roots):
        stack += [")", root, "("]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        if item.message is not None:
            if out and out[-1] != "(":
                out.append(" ")
            out.append(str(number(item.message)))
        if len(item.children) == 1:
            stack.append(item.children[0])
        elif item.children:
            if item.message is not None:
                out.append(" ")
            for child in reversed(item.children):
                stack += [")", child, "("]
    return "".join(out)

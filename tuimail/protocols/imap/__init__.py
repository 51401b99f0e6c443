"""IMAP4rev1 (RFC 3501): sans-I/O parser, state machine, FETCH and SEARCH helpers."""

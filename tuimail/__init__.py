"""tuimail: a teaching mail server (SMTP, POP3, IMAP4rev1) with a Textual terminal UI."""

__version__ = "0.1.0"

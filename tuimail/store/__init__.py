"""Mail storage: Maildir++ folders as Dovecot and Courier lay them out, with a uid list per folder.

`MailStore` (one per server) -> `Mailbox` (one per account) -> `Folder` (INBOX, Sent, Work/2026...).
"""

from tuimail.store.maildir import Folder, FolderError, Mailbox, MailStore, MessageRef

__all__ = ["Folder", "FolderError", "Mailbox", "MailStore", "MessageRef"]

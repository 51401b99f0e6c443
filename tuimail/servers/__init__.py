"""The only asyncio code: the engine that starts and stops listeners, the session registry, the log
writers, and one thin listener per protocol (SMTP on aiosmtpd; POP3 and IMAP drive sans-I/O machines)."""

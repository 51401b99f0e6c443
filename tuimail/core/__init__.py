"""Plain Python with no asyncio and no Textual: events, the directory of domains and accounts,
passwords, address rules, masking of secrets and telnet line editing."""

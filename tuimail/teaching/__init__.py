"""Teaching mode (issue 10): annotations of every command and reply (tables per protocol, ru/en,
with the RFC section), the lab's exercises and each student's progress, roster import and lab reset.

Plain Python: nothing here imports asyncio, Textual or the servers (imports point one way:
`servers -> teaching -> core`).
"""

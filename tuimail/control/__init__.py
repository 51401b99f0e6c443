"""How the front ends reach the engine (DESIGN.md "The shape"): the `EngineClient` interface and
its two kinds, the in-process client (no server runs on the config: the engine runs here) and the
socket client (attached to a running `tuimail serve` over the Unix control socket in data_dir), the
command table both use (`commands`), and the versioned JSON-lines wire format (`wire`).

Adding a command or query: write it once in `commands.py` with `@command("name")` (see the
docstring there); both kinds and the socket server pick it up. Adding an event type or a field:
add it to `tuimail.core.events` (a frozen dataclass); `wire` carries it without a change.
"""

from tuimail.control.client import BlockView, CommandError, EngineClient, ServerGone
from tuimail.core.runlock import AlreadyRunning

__all__ = ["AlreadyRunning", "BlockView", "CommandError", "EngineClient", "ServerGone"]

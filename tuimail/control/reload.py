"""SIGHUP: re-read config.toml and apply what changed, as the Settings tab does.

[server] hostname and the [policy] values apply at once; a changed port rebinds that listener
(sessions stay); [[domains]] are taken as written; [metrics] restarts the endpoint. What cannot be
applied while running (the listen address, data_dir, log_dir, [tls]) is reported in system.log.
A file with an error changes nothing: the running settings stay, and system.log names the file,
the line and the key (`config.toml:12: policy.max_connections: ...`).
"""

from __future__ import annotations

import asyncio
import logging

from tuimail.config import Config, ConfigError
from tuimail.control.commands import apply_models

BY = "SIGHUP (config.toml re-read)"


async def reload_config(host) -> list[str]:
    """Returns what could not be applied (also written to system.log)."""
    engine = host.engine
    config = engine.config
    try:
        fresh = await asyncio.to_thread(Config.load, config.path)
    except ConfigError as e:
        engine.bus.system(f"SIGHUP: {e}; nothing applied, the running settings stay", logging.ERROR)
        return [str(e)]
    running, new = config.settings, fresh.settings
    problems: list[str] = []
    changed: list[str] = []
    if new.tls != running.tls:
        problems.append("[tls]: takes effect when tuimail restarts")
    if new.domains != running.domains:
        running.domains = new.domains
        changed.append("[[domains]]")
    if new.metrics != running.metrics:
        running.metrics = new.metrics
        await host.restart_metrics()
        changed.append("[metrics]")
    models = {s: getattr(new, s) for s in ("server", "ports", "policy") if getattr(new, s) != getattr(running, s)}
    if models:
        if problems:  # [tls]: apply_models logs only its own
            engine.bus.system(f"SIGHUP: not applied: {'; '.join(problems)}", logging.WARNING)
        problems += await apply_models(engine, models, BY, save=False)
    elif changed or problems:
        engine.bus.system(f"SIGHUP: applied {', '.join(changed) or 'nothing'}"
                          + (f"; not applied: {'; '.join(problems)}" if problems else ""),
                          logging.WARNING if problems else logging.INFO)
    else:
        engine.bus.system("SIGHUP: config.toml re-read; nothing changed")
    if models and changed:
        engine.bus.system(f"SIGHUP: also applied {', '.join(changed)}")
    return problems

"""Refresh screenshots/: one SVG per tab (and the session window), 100x30, from the demo engine state
(tuimail.control.demo: fixed clock, five live registry sessions with ids 11-15, fixed log lines), so the
pictures only change when the UI does.

    .venv/bin/python scripts/make_screenshots.py [--out screenshots] [--size 100x30]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tuimail.tui import screenshot  # noqa: E402
from tuimail.tui.app import TuimailApp  # noqa: E402
from tuimail.control.demo import demo_engine, publish_transcripts  # noqa: E402

SHOTS = [
    ("1-sessions", ["1"]),
    ("2-logs", ["2"]),
    ("3-accounts", ["3"]),
    ("4-domains", ["4"]),
    ("5-settings", ["5"]),
    ("6-session-window", ["1", "down", "down", "enter"]),
    ("7-account-form", ["escape", "3", "enter"]),
    ("8-recent", ["escape", "1", "r"]),
    ("9-ended-session-window", ["enter"]),
    ("10-help", ["escape", "r", "question_mark"]),
    ("11-kill-dialog", ["escape", "k"]),
    ("12-delete-account-dialog", ["n", "3", "down", "d"]),
    ("13-students", ["escape", "6"]),
]
# the same screens with `[server] language = "ru"` (issue 10 §5), as a student in the lab sees them
SHOTS_RU = [
    ("14-sessions-ru", ["1"]),
    ("15-session-window-ru", ["1", "down", "down", "enter", "a"]),
    ("16-students-ru", ["escape", "6"]),
]


async def make(out: Path, size: tuple[int, int]) -> list[Path]:
    written = await shoot(out, size, SHOTS, "en")
    written += await shoot(out, size, SHOTS_RU, "ru")
    return written


async def shoot(out: Path, size: tuple[int, int], shots, language: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tuimail-shots-") as tmp:
        engine, clock = demo_engine(Path(tmp))
        engine.config.settings.server.language = language
        app = TuimailApp(engine.config, engine=engine, clock=clock, start_engine=False, cursor_blink=False,
                         first_run=False)
        written = []
        async with app.run_test(size=size) as pilot:
            await app.engine_ready.wait()
            publish_transcripts(engine)
            app.tick()
            await app.query_one("#accounts-pane").loaded.wait()
            for name, keys in shots:
                await pilot.press(*keys)
                await pilot.pause()
                await app.animator.wait_until_complete()
                await pilot.pause()
                paths, why = screenshot.write(app, out, name)
                if why:
                    print(f"{name}: {why}", file=sys.stderr)
                written.extend(paths)
        return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "screenshots")
    parser.add_argument("--size", default="100x30")
    args = parser.parse_args()
    width, height = (int(n) for n in args.size.split("x"))
    for path in asyncio.run(make(args.out, (width, height))):
        print(path)


if __name__ == "__main__":
    main()

"""Screenshots of the screen in front (f12, the palette, scripts/make_screenshots.py): the picture
as SVG, the same as plain text (a student pastes it into a report) and as PNG when cairosvg and
the system's libcairo are there. They are clean: the app's own toasts are hidden while the picture
is taken; control characters on screen are already escaped (`\\x1b`), so the text file has none.
"""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console


def render(app) -> tuple[str, str]:
    """(svg, text) of the screen in front, dialogs over their background included."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False, safe_box=False)
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    console.print(update)
    text = "\n".join("".join(segment.text for segment in strip).rstrip() for strip in update.strips)
    return console.export_svg(title=app.title), text + "\n"


def png_from_svg(svg: str, path: Path) -> str | None:
    """Write a PNG; returns None, or why there is none (no cairosvg / no libcairo)."""
    try:
        import cairosvg  # noqa: PLC0415 (optional at run time: it needs the system's libcairo)
    except (ImportError, OSError) as e:
        return f"no PNG ({type(e).__name__}: install cairosvg and libcairo2)"
    try:
        cairosvg.svg2png(bytestring=svg.encode("utf-8"), write_to=str(path))
    except Exception as e:  # a converter failure must not cost the SVG and text
        return f"no PNG ({e})"
    return None


def write(app, folder: Path, stem: str, png: bool = True) -> tuple[list[Path], str | None]:
    """Write stem.svg, stem.txt (and stem.png); returns the paths and why a PNG is missing."""
    svg, text = render(app)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.svg", folder / f"{stem}.txt"]
    paths[0].write_text(svg, encoding="utf-8")
    paths[1].write_text(text, encoding="utf-8")
    why = None
    if png:
        why = png_from_svg(svg, folder / f"{stem}.png")
        if why is None:
            paths.append(folder / f"{stem}.png")
    return paths, why

"""The tray icon's artwork, drawn with Pillow: one look per pool state.

A rounded tile in the state's colour holds three stacked layers (the pool of accounts). A badge in
the corner repeats the state as a shape, so it reads without colour too: none when healthy, ``!``
when degraded, ``×`` when exhausted (the top layer turns hollow: nothing left), a pause sign when stopped.
Everything is drawn on a 64-unit grid at 4× the asked size and scaled down, so it stays crisp from
16 px tray slots to the 256 px packaging icon.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw

from tray.health import Health
from tray.paths import write_atomic

STATES: tuple[Health, ...] = ("healthy", "degraded", "exhausted", "stopped")

COLOURS: dict[Health, tuple[int, int, int]] = {
    "healthy": (31, 157, 85),
    "degraded": (224, 150, 20),
    "exhausted": (214, 66, 58),
    "stopped": (107, 114, 128),
}
_WHITE = (255, 255, 255, 255)


def _shade(rgb: tuple[int, int, int], factor: float) -> tuple[int, int, int, int]:
    r, g, b = (max(0, min(255, round(c * factor))) for c in rgb)
    return (r, g, b, 255)


def render(state: Health, size: int = 64) -> Image.Image:
    """The icon for ``state`` as an RGBA image of ``size``×``size`` pixels."""
    scale = max(4, 256 // size) if size < 256 else 1
    px = size * scale
    u = px / 64.0  # one grid unit in pixels

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        return (x0 * u, y0 * u, x1 * u, y1 * u)

    img = Image.new("RGBA", (px, px), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    base = COLOURS[state]
    # Tile, with a darker lip at the bottom for a little depth.
    draw.rounded_rectangle(box(2, 2, 62, 62), radius=14 * u, fill=_shade(base, 0.80))
    draw.rounded_rectangle(box(2, 2, 62, 59), radius=14 * u, fill=_shade(base, 1.0))

    # The pool: three stacked layers, seen from above (a filled top sheet, two edges below it).
    hollow = state == "exhausted"
    top = [(32 * u, 9 * u), (54 * u, 20 * u), (32 * u, 31 * u), (10 * u, 20 * u)]
    if hollow:
        draw.line([*top, top[0]], fill=_WHITE, width=round(3.2 * u), joint="curve")
    else:
        draw.polygon(top, fill=_WHITE)
    for dy, alpha in ((10.5, 230), (21.0, 200)):
        edge = [(10 * u, (20 + dy) * u), (32 * u, (31 + dy) * u), (54 * u, (20 + dy) * u)]
        draw.line(edge, fill=(255, 255, 255, alpha), width=round(4.2 * u), joint="curve")

    if state != "healthy":
        _badge(draw, state, u)
    return img.resize((size, size), Image.Resampling.LANCZOS) if scale > 1 else img


def _badge(draw: ImageDraw.ImageDraw, state: Health, u: float) -> None:
    cx, cy, r = 47.0, 47.0, 15.0
    ink = _shade(COLOURS[state], 0.62)
    ring = r + 2.5
    draw.ellipse(((cx - ring) * u, (cy - ring) * u, (cx + ring) * u, (cy + ring) * u), fill=_WHITE)
    draw.ellipse(((cx - r) * u, (cy - r) * u, (cx + r) * u, (cy + r) * u), fill=ink)
    w = 4.2 * u
    if state == "degraded":  # "!"
        draw.rounded_rectangle(((cx - 2.2) * u, (cy - 9) * u, (cx + 2.2) * u, (cy + 3) * u),
                               radius=2 * u, fill=_WHITE)
        draw.ellipse(((cx - 2.5) * u, (cy + 5) * u, (cx + 2.5) * u, (cy + 10) * u), fill=_WHITE)
    elif state == "exhausted":  # "×"
        d = 6.5
        draw.line(((cx - d) * u, (cy - d) * u, (cx + d) * u, (cy + d) * u), fill=_WHITE, width=round(w))
        draw.line(((cx - d) * u, (cy + d) * u, (cx + d) * u, (cy - d) * u), fill=_WHITE, width=round(w))
    else:  # stopped: a pause sign
        for x in (cx - 4.5, cx + 1.5):
            draw.rounded_rectangle((x * u, (cy - 7) * u, (x + 3.2) * u, (cy + 7) * u), radius=1.2 * u,
                                   fill=_WHITE)


def write_artwork(folder: Path, sizes: tuple[int, ...] = (256,)) -> list[Path]:
    """Write ``codex-pool-<state>-<size>.png`` for every state and size, and ``codex-pool.png``
    (the healthy 256 px icon used for packaging)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for size in sizes:
        for state in STATES:
            path = folder / f"codex-pool-{state}-{size}.png"
            render(state, size).save(path, optimize=True)
            written.append(path)
    main = folder / "codex-pool.png"
    render("healthy", 256).save(main, optimize=True)
    written.append(main)
    return written


def state_icons(folder: Path, size: int = 128) -> dict[Health, Path]:
    """One picture per pool state in ``folder`` (drawn when missing), for notifications that show
    the state they tell of."""
    folder.mkdir(parents=True, exist_ok=True)
    found: dict[Health, Path] = {}
    for state in STATES:
        path = folder / f"codex-pool-{state}-{size}.png"
        if not path.is_file():  # written atomically: a crash never leaves half a picture
            png = io.BytesIO()
            render(state, size).save(png, format="PNG", optimize=True)
            write_atomic(path, png.getvalue(), mode=0o644)
        found[state] = path
    return found


if __name__ == "__main__":  # python -m tray.desktop.icon <folder>: regenerate the artwork
    import sys

    for p in write_artwork(Path(sys.argv[1] if len(sys.argv) > 1 else "assets")):
        print(p)

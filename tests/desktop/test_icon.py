"""The tray icon artwork: one clear, distinct look per pool state at every tray size."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tray.desktop.icon import COLOURS, STATES, render, write_artwork


def main_colour(image: Image.Image) -> tuple[int, int, int]:
    counts = image.convert("RGBA").getcolors(1 << 20) or []
    opaque = [(n, rgba[:3]) for n, rgba in counts if rgba[3] == 255 and min(rgba[:3]) < 235]
    return max(opaque)[1]


@pytest.mark.parametrize("size", [22, 32, 64, 256])
@pytest.mark.parametrize("state", STATES)
def test_each_state_renders_at_each_size(state: str, size: int) -> None:
    image = render(state, size)  # type: ignore[arg-type]
    assert image.size == (size, size) and image.mode == "RGBA"
    assert image.getpixel((0, 0))[3] < 32  # rounded corners stay (nearly) transparent
    assert image.getpixel((size // 2, size // 2))[3] == 255
    seen, want = main_colour(image), COLOURS[state]  # type: ignore[index]
    assert all(abs(a - b) <= 12 for a, b in zip(seen, want, strict=True)), (seen, want)


def test_states_look_different_even_without_colour() -> None:
    grey = {state: render(state, 64).convert("L") for state in STATES}
    for a in STATES:
        for b in STATES:
            if a < b:
                pairs = zip(grey[a].tobytes(), grey[b].tobytes(), strict=True)
                diff = sum(1 for x, y in pairs if abs(x - y) > 40)
                assert diff > 100, f"{a} and {b} differ in only {diff} pixels of brightness"


def test_artwork_files(tmp_path: Path) -> None:
    written = write_artwork(tmp_path)
    assert {p.name for p in written} == {f"codex-pool-{s}-256.png" for s in STATES} | {"codex-pool.png"}
    with Image.open(tmp_path / "codex-pool.png") as image:
        assert image.size == (256, 256)


def test_the_packaged_icon_is_the_healthy_artwork() -> None:
    shipped = Path(__file__).resolve().parents[2] / "tray" / "assets" / "codex-pool.png"
    with Image.open(shipped) as image:
        assert main_colour(image) == COLOURS["healthy"]

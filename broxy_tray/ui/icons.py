"""The tray icon: the art of `icons/broxy.svg`, drawn with Pillow, in one variant per aggregate state.

No SVG renderer is needed: the master is four circles and three lines, so it
is drawn here in code (supersampled, then downscaled for smooth edges). The
variants:

- `AVAILABLE` — every enabled server is available: the plain art;
- `BUSY` — something is connecting or waiting for a sign-in: an amber badge with three dots;
- `ERROR` — a server is in error, or mcp.json was rejected: a red badge with "!";
- `IDLE` — nothing is enabled: the art in grey.

Platform formats are generated in code too: PNGs at any size, a macOS
template image (black + alpha only; the menu bar tints it), and a Windows
`.ico` with the usual sizes. `python -m broxy_tray.ui.icons DIR` writes them.
"""

from __future__ import annotations

import enum
import io
import sys
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw

from ..state import AppState, ServerStatus

DARK = (31, 41, 55, 255)  # #1f2937, as in broxy.svg
BLUE = (37, 99, 235, 255)  # #2563eb
GREY = (156, 163, 175, 255)
HALO = (255, 255, 255, 235)  # keeps the dark strokes visible on dark panels
AMBER = (245, 158, 11, 255)
RED = (220, 38, 38, 255)
WHITE = (255, 255, 255, 255)
BLACK = (0, 0, 0, 255)
CLEAR = (0, 0, 0, 0)

ICO_SIZES = (16, 20, 24, 32, 40, 48, 64, 128, 256)
PNG_SIZES = (16, 22, 24, 32, 48, 64, 128, 256)  # Linux panels 16–48, HiDPI up to 256
TEMPLATE_POINTS = 22  # macOS menu bar: 22 pt, plus an @2x
_SS = 4  # supersampling factor


class IconKind(str, enum.Enum):
    AVAILABLE = "available"
    BUSY = "busy"
    ERROR = "error"
    IDLE = "idle"


def icon_kind(state: AppState) -> IconKind:
    """The worst status wins: error, then waiting (sign-in or connecting), then all fine; nothing enabled is idle."""
    statuses = {s.status for s in state.servers}
    if ServerStatus.ERROR in statuses or state.config_error:
        return IconKind.ERROR
    if statuses & {ServerStatus.AUTHORIZATION, ServerStatus.CONNECTING}:
        return IconKind.BUSY
    if ServerStatus.AVAILABLE in statuses:
        return IconKind.AVAILABLE
    return IconKind.IDLE


@lru_cache(maxsize=64)
def render(kind: IconKind, size: int = 64, *, template: bool = False) -> Image.Image:
    """The icon for `kind` as an RGBA image of `size`×`size` pixels (cached; do not mutate)."""
    big = size * _SS
    img = Image.new("RGBA", (big, big), CLEAR)
    d = ImageDraw.Draw(img)
    u = big / 64.0  # one unit of the 64×64 master

    def circle(cx: float, cy: float, r: float, fill: tuple[int, ...]) -> None:
        d.ellipse(((cx - r) * u, (cy - r) * u, (cx + r) * u, (cy + r) * u), fill=fill)

    def line(x1: float, y1: float, x2: float, y2: float, width: float, fill: tuple[int, ...]) -> None:
        d.line(((x1 * u, y1 * u), (x2 * u, y2 * u)), fill=fill, width=max(1, round(width * u)))
        circle(x1, y1, width / 2, fill)  # round caps
        circle(x2, y2, width / 2, fill)

    ink = BLACK if template else (GREY if kind is IconKind.IDLE else DARK)
    hub = BLACK if template else (GREY if kind is IconKind.IDLE else BLUE)
    spokes = ((12, 14), (52, 14), (32, 56))
    if not template:  # a light halo under the art, for dark panels
        for x, y in spokes:
            line(32, 32, x, y, 8, HALO)
            circle(x, y, 8.5, HALO)
        circle(32, 32, 11.5, HALO)
    for x, y in spokes:
        line(32, 32, x, y, 5, ink)
    circle(32, 32, 10, hub)
    if template and kind is IconKind.IDLE:  # no colour in a template: a hollow hub says "nothing enabled"
        circle(32, 32, 5.5, CLEAR)
    for x, y in spokes:
        circle(x, y, 7, ink)

    if kind in (IconKind.BUSY, IconKind.ERROR):
        bx, by, br = 48.0, 48.0, 14.0
        if template:  # cut a ring, then a solid badge with its glyph cut out
            circle(bx, by, br + 2.5, CLEAR)
            circle(bx, by, br, BLACK)
            glyph = CLEAR
        else:
            circle(bx, by, br + 2, WHITE)
            circle(bx, by, br, AMBER if kind is IconKind.BUSY else RED)
            glyph = WHITE
        if kind is IconKind.BUSY:
            for dx in (-6.5, 0.0, 6.5):
                circle(bx + dx, by, 2.6, glyph)
        else:
            d.rounded_rectangle(((bx - 2.2) * u, (by - 9) * u, (bx + 2.2) * u, (by + 3) * u), radius=2 * u, fill=glyph)
            circle(bx, by + 7.2, 2.4, glyph)
    return img.resize((size, size), Image.LANCZOS)


def tray_image(kind: IconKind, platform: str | None = None) -> Image.Image:
    """What to hand to pystray on this platform: a template image on macOS, colour elsewhere."""
    platform = platform or sys.platform
    if platform == "darwin":
        return render(kind, TEMPLATE_POINTS * 2, template=True)
    return render(kind, 64)


def png_bytes(kind: IconKind, size: int, *, template: bool = False) -> bytes:
    buf = io.BytesIO()
    render(kind, size, template=template).save(buf, format="PNG")
    return buf.getvalue()


def ico_bytes(kind: IconKind = IconKind.AVAILABLE) -> bytes:
    """A Windows `.ico` holding every size in `ICO_SIZES`, each drawn at its own size."""
    buf = io.BytesIO()
    largest = render(kind, ICO_SIZES[-1])
    largest.save(buf, format="ICO", sizes=[(s, s) for s in ICO_SIZES],
                 append_images=[render(kind, s) for s in ICO_SIZES[:-1]])
    return buf.getvalue()


def export(directory: Path) -> list[Path]:
    """Write the platform files: a 256 px PNG per state, `broxy.ico`, and the macOS template pair."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def put(name: str, data: bytes) -> None:
        path = directory / name
        path.write_bytes(data)
        written.append(path)

    for kind in IconKind:
        put(f"broxy-{kind.value}.png", png_bytes(kind, 256))
    put("broxy.ico", ico_bytes(IconKind.AVAILABLE))
    put("broxyTemplate.png", png_bytes(IconKind.AVAILABLE, TEMPLATE_POINTS, template=True))
    put("broxyTemplate@2x.png", png_bytes(IconKind.AVAILABLE, TEMPLATE_POINTS * 2, template=True))
    return written


if __name__ == "__main__":  # pragma: no cover
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "icons")
    for p in export(target):
        print(p)

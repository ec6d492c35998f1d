"""The tray icon as StatusNotifierItem pixmaps: `a(iiay)`, ARGB32 in network byte order.

Every size a panel may ask for is sent (16, 22, 24, 32, 48 px) so the host
picks one instead of scaling a single image. Straight (not premultiplied)
alpha, as KDE and the AppIndicator libraries send it.
"""

from __future__ import annotations

from functools import lru_cache

from PIL import Image

from ..icons import IconKind, render

SIZES = (16, 22, 24, 32, 48)


def argb32(image: Image.Image) -> bytes:
    """RGBA pixels → A, R, G, B bytes per pixel (big-endian ARGB32)."""
    r, g, b, a = image.convert("RGBA").split()
    return Image.merge("RGBA", (a, r, g, b)).tobytes()


@lru_cache(maxsize=8)
def pixmaps(kind: IconKind) -> tuple[tuple[int, int, bytes], ...]:
    """The icon for `kind` at every size in `SIZES`, as (width, height, data) triples (cached)."""
    return tuple((s, s, argb32(render(kind, s))) for s in SIZES)


def as_dbus(kind: IconKind) -> list[list[object]]:
    """The `a(iiay)` value dbus-fast marshals."""
    return [[w, h, data] for w, h, data in pixmaps(kind)]

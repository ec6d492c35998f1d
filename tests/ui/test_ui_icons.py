"""Icon variants and platform formats, drawn in code."""

from __future__ import annotations

import io

from PIL import Image

from broxy_tray.state import AppState, ServerState, ServerStatus
from broxy_tray.ui import icons

S = ServerStatus


def st(*statuses, config_error=None):
    return AppState(servers=tuple(ServerState(str(i), str(i), s) for i, s in enumerate(statuses)),
                    config_error=config_error)


def test_worst_status_wins():
    K = icons.IconKind
    assert icons.icon_kind(st()) is K.IDLE
    assert icons.icon_kind(st(S.DISABLED)) is K.IDLE
    assert icons.icon_kind(st(S.AVAILABLE, S.DISABLED)) is K.AVAILABLE
    assert icons.icon_kind(st(S.AVAILABLE, S.CONNECTING)) is K.BUSY
    assert icons.icon_kind(st(S.AUTHORIZATION, S.AVAILABLE)) is K.BUSY
    assert icons.icon_kind(st(S.AUTHORIZATION, S.ERROR)) is K.ERROR
    assert icons.icon_kind(st(S.AVAILABLE, config_error="bad json")) is K.ERROR


def test_variants_differ_and_have_the_right_colours():
    imgs = {k: icons.render(k, 64) for k in icons.IconKind}
    assert all(i.size == (64, 64) and i.mode == "RGBA" for i in imgs.values())
    raw = {k: i.tobytes() for k, i in imgs.items()}
    assert len(set(raw.values())) == 4
    # the badge corner: red for error, amber for busy
    r, g, b, a = imgs[icons.IconKind.ERROR].getpixel((52, 44))
    assert r > 180 and g < 80 and a > 200
    r, g, b, a = imgs[icons.IconKind.BUSY].getpixel((48, 42))
    assert r > 200 and 120 < g < 190 and b < 60


def test_template_is_black_and_alpha_only():
    for kind in icons.IconKind:
        img = icons.render(kind, 44, template=True)
        raw = img.tobytes()
        colours = {raw[i:i + 3] for i in range(0, len(raw), 4) if raw[i + 3] > 0}
        assert colours == {b"\0\0\0"}, kind


def test_ico_holds_all_sizes_and_export_writes_files(tmp_path):
    ico = Image.open(io.BytesIO(icons.ico_bytes()))
    assert set(ico.info["sizes"]) >= {(16, 16), (32, 32), (48, 48), (256, 256)}
    written = {p.name for p in icons.export(tmp_path)}
    assert written == {"broxy-available.png", "broxy-busy.png", "broxy-error.png", "broxy-idle.png",
                       "broxy.ico", "broxyTemplate.png", "broxyTemplate@2x.png"}
    assert Image.open(tmp_path / "broxyTemplate@2x.png").size == (44, 44)
    assert icons.tray_image(icons.IconKind.AVAILABLE, "darwin").size == (44, 44)
    assert icons.tray_image(icons.IconKind.AVAILABLE, "linux").size == (64, 64)

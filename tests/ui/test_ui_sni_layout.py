"""The menu model as dbusmenu items (pure, no bus): stable ids, property-only updates vs layout changes."""

from __future__ import annotations

from broxy_tray.state import AppState, ServerState, ServerStatus
from broxy_tray.ui import menu as m
from broxy_tray.ui.icons import IconKind, render
from broxy_tray.ui.sni._layout import MenuLayout, escape
from broxy_tray.ui.sni._pixmap import SIZES, argb32, pixmaps


def state(*servers: ServerState, storage: str = "Secret Service", error: str | None = None) -> AppState:
    return AppState(servers=servers, config_path="/x/mcp.json", storage=storage, config_error=error)


def srv(sid: str, status: ServerStatus, **kw) -> ServerState:
    return ServerState(id=sid, name=kw.pop("name", sid.title()), status=status, **kw)


def ids_by_label(layout: MenuLayout) -> dict[str, int]:
    return {n.props.get("label", f"<{n.props.get('type')}>"): nid for nid, n in layout.nodes.items() if nid}


def test_a_label_change_keeps_ids_and_updates_only_that_label():
    lay = MenuLayout()
    first = lay.update(m.build_menu(state(srv("gh", ServerStatus.CONNECTING), srv("fs", ServerStatus.AVAILABLE))))
    assert first.layout and lay.revision == 2
    before = {nid: dict(n.props) for nid, n in lay.nodes.items()}
    up = lay.update(m.build_menu(state(srv("gh", ServerStatus.CONNECTING, detail="retrying in 2 s"),
                                       srv("fs", ServerStatus.AVAILABLE, tools=3))))
    assert not up.layout and lay.revision == 2
    changed = dict(up.changed)
    fs_row = next(nid for nid, p in before.items() if p.get("label", "").startswith("● Fs"))
    assert changed[fs_row] == {"label": "● Fs — Available · 3 tools"}
    assert all(set(p) == {"label"} for p in changed.values())
    assert up.removed == ()
    assert set(lay.nodes) == set(before)


def test_the_title_and_storage_lines_keep_their_ids_when_their_text_changes():
    lay = MenuLayout()
    lay.update(m.build_menu(state(srv("a", ServerStatus.CONNECTING), storage="")))
    title, storage = lay.nodes[0].children[0], lay.nodes[0].children[-4]
    up = lay.update(m.build_menu(state(srv("a", ServerStatus.CONNECTING, detail="x"), storage="Secret Service")))
    assert not up.layout
    assert dict(up.changed)[storage] == {"label": "Secure storage: Secret Service"}
    assert lay.nodes[0].children[0] == title


def test_a_structure_change_is_a_new_revision_and_known_items_keep_their_ids():
    lay = MenuLayout()
    lay.update(m.build_menu(state(srv("a", ServerStatus.AVAILABLE), srv("b", ServerStatus.DISABLED))))
    quit_id = ids_by_label(lay)["Quit"]
    rev = lay.revision
    up = lay.update(m.build_menu(state(srv("a", ServerStatus.ERROR, detail="boom"), srv("b", ServerStatus.DISABLED))))
    assert up.layout and lay.revision == rev + 1
    assert ids_by_label(lay)["Quit"] == quit_id
    row = next(n for n in lay.nodes.values() if n.props.get("label", "").startswith("✕ A"))
    assert [lay.nodes[c].props.get("label") for c in row.children] == ["Retry now", "Copy error", None, "Disable"]
    assert lay.nodes[row.children[2]].props == {"type": "separator"}
    gone = lay.update(m.build_menu(state(srv("b", ServerStatus.DISABLED))))
    assert gone.layout and not any(n.props.get("label", "").startswith("✕ A") for n in lay.nodes.values())
    new_ids = [nid for nid in lay.nodes if nid]
    assert len(new_ids) == len(set(new_ids))


def test_item_properties_match_the_model():
    lay = MenuLayout()
    lay.update(m.build_menu(state(srv("a_b", ServerStatus.AUTHORIZATION, seconds_left=9, name="A_b")), autostart=True))
    by = ids_by_label(lay)
    login = lay.nodes[by["Start at login"]].props
    assert login == {"label": "Start at login", "enabled": True, "toggle-type": "checkmark", "toggle-state": 1}
    row = lay.nodes[by["◐ A__b — Authorization: 9 s"]]
    assert row.props["children-display"] == "submenu" and row.props["enabled"] is True
    sub = [lay.nodes[c].props for c in row.children]
    assert sub[1] == {"label": "Open sign-in page again", "enabled": False}  # no URL yet
    assert lay.nodes[by["broxy-tray — 0 of 1 available"]].props["enabled"] is False
    assert escape("a_b__c") == "a__b____c"


def test_layout_trees_respect_depth_and_property_filters():
    lay = MenuLayout()
    lay.update(m.build_menu(state(srv("a", ServerStatus.AVAILABLE))))
    full = lay.tree(0, -1)
    assert lay.tree(0, 2**31 - 1) == full == lay.tree(0, -99)
    assert lay.tree(0, 0)[2] == []
    top = lay.tree(0, 1)
    assert all(child.value[2] == [] for child in top[2])
    only = lay.tree(0, -1, ["label"])
    assert all(set(ch.value[1]) <= {"label"} for ch in only[2])


def test_pixmaps_are_argb32_in_network_byte_order():
    got = pixmaps(IconKind.ERROR)
    assert [w for w, _, _ in got] == list(SIZES)
    img = render(IconKind.ERROR, 22)
    data = argb32(img)
    r, g, b, a = img.getpixel((11, 11))
    assert tuple(data[(11 * 22 + 11) * 4:(11 * 22 + 11) * 4 + 4]) == (a, r, g, b)


def test_status_and_tooltip_follow_the_state():
    from broxy_tray.ui.sni._runner import item_status, tooltip

    waiting = state(srv("a", ServerStatus.AUTHORIZATION, seconds_left=5), srv("b", ServerStatus.AVAILABLE))
    assert item_status(waiting) == "NeedsAttention"
    assert item_status(state(srv("a", ServerStatus.ERROR, detail="x"))) == "Active"
    assert tooltip(waiting) == "1 of 2 available"
    assert tooltip(state()) == "no servers configured"
    assert tooltip(state(srv("a", ServerStatus.AVAILABLE), error="bad")).startswith("1 of 1 available\n")

"""The menu model as dbusmenu items, with ids that stay put while the menu's shape stays put.

Pure (no bus): `MenuLayout.update(model)` says whether the structure changed
(→ `LayoutUpdated` with a new revision) or only some properties did
(→ `ItemsPropertiesUpdated` with exactly those). An item's id follows its
*key* — what it is, not what it says: an action item is its action kind and
server, a server row is its server, a disabled line is the stem of its label
("Secure storage", "broxy-tray") — so "● GitHub — Available" turning into
"◐ GitHub — Authorization: 97 s" is a label update of the same id, while a
submenu gaining "Retry now" is a layout change.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from .. import menu as m

# dbusmenu item properties this menu uses, with their D-Bus types
SIGNATURES = {
    "type": "s",
    "label": "s",
    "enabled": "b",
    "visible": "b",
    "toggle-type": "s",
    "toggle-state": "i",
    "children-display": "s",
}
ROOT_PROPS: dict[str, Any] = {"children-display": "submenu"}

Key = tuple[Any, ...]


@dataclass
class Node:
    id: int
    props: dict[str, Any]
    children: list[int] = field(default_factory=list)
    action: m.Action | None = None
    clickable: bool = False


@dataclass(frozen=True)
class Update:
    layout: bool  # the structure changed: send LayoutUpdated(revision, 0)
    changed: tuple[tuple[int, dict[str, Any]], ...] = ()  # (id, properties with new values)
    removed: tuple[tuple[int, tuple[str, ...]], ...] = ()  # (id, property names back to their defaults)

    @property
    def empty(self) -> bool:
        return not (self.layout or self.changed or self.removed)


def escape(label: str) -> str:
    """dbusmenu labels use `_` for mnemonics; a literal underscore is `__`."""
    return label.replace("_", "__")


def item_props(item: m.MenuItem) -> dict[str, Any]:
    if item.separator:
        return {"type": "separator"}
    props: dict[str, Any] = {"label": escape(item.label)}
    clickable = item.action is not None or bool(item.submenu)
    props["enabled"] = bool(item.enabled and clickable)
    if item.checked is not None:
        props["toggle-type"] = "checkmark"
        props["toggle-state"] = 1 if item.checked else 0
    if item.submenu:
        props["children-display"] = "submenu"
    return props


def _stem(label: str) -> str:
    return re.split(r" — |:", label, maxsplit=1)[0].strip()


def _base_key(item: m.MenuItem) -> Key:
    if item.separator:
        return ("sep",)
    if item.action is not None:
        return ("act", item.action.kind, item.action.server or "")
    if item.submenu:
        owner = next((c.action.server for c in item.submenu if c.action is not None and c.action.server), None)
        return ("sub", owner if owner is not None else _stem(item.label))
    return ("info", _stem(item.label))


def _keys(items: Iterable[m.MenuItem]) -> list[Key]:
    seen: Counter[Key] = Counter()
    out = []
    for item in items:
        base = _base_key(item)
        out.append(base + (seen[base],))
        seen[base] += 1
    return out


def _shape(items: tuple[m.MenuItem, ...]) -> tuple[Any, ...]:
    return tuple((k, _shape(it.submenu) if it.submenu else None) for k, it in zip(_keys(items), items))


class MenuLayout:
    """The current dbusmenu tree: id → node, a revision, and the ids of keys seen so far."""

    def __init__(self) -> None:
        self.revision = 1
        self.nodes: dict[int, Node] = {0: Node(0, dict(ROOT_PROPS))}
        self._ids: dict[tuple[Key, ...], int] = {}
        self._next_id = 1
        self._shape: tuple[Any, ...] | None = None

    def update(self, model: tuple[m.MenuItem, ...]) -> Update:
        shape = _shape(model)
        if shape != self._shape:
            self._shape = shape
            self._rebuild(model)
            self.revision += 1
            return Update(layout=True)
        changed: list[tuple[int, dict[str, Any]]] = []
        removed: list[tuple[int, tuple[str, ...]]] = []
        for node, item in self._walk(self.nodes[0].children, model):
            props = item_props(item)
            diff = {k: v for k, v in props.items() if node.props.get(k) != v}
            gone = tuple(k for k in node.props if k not in props)
            if diff:
                changed.append((node.id, diff))
            if gone:
                removed.append((node.id, gone))
            node.props = props
            node.action = item.action
            node.clickable = item.action is not None and item.enabled
        return Update(layout=False, changed=tuple(changed), removed=tuple(removed))

    def _walk(self, ids: list[int], items: tuple[m.MenuItem, ...]) -> Iterable[tuple[Node, m.MenuItem]]:
        for nid, item in zip(ids, items):
            node = self.nodes[nid]
            yield node, item
            if item.submenu:
                yield from self._walk(node.children, item.submenu)

    def _rebuild(self, model: tuple[m.MenuItem, ...]) -> None:
        nodes: dict[int, Node] = {0: Node(0, dict(ROOT_PROPS))}
        used: dict[tuple[Key, ...], int] = {}

        def build(items: tuple[m.MenuItem, ...], prefix: tuple[Key, ...]) -> list[int]:
            ids = []
            for key, item in zip(_keys(items), items):
                path = prefix + (key,)
                nid = self._ids.get(path)
                if nid is None:
                    nid = self._next_id
                    self._next_id += 1
                used[path] = nid
                node = Node(nid, item_props(item), action=item.action,
                            clickable=item.action is not None and item.enabled)
                nodes[nid] = node
                if item.submenu:
                    node.children = build(item.submenu, path)
                ids.append(nid)
            return ids

        nodes[0].children = build(model, ())
        self.nodes = nodes
        self._ids = used  # keys no longer shown forget their ids; ids are never reused

    # reading (for GetLayout / GetGroupProperties)

    def props(self, nid: int, names: Iterable[str] = ()) -> dict[str, Any]:
        """`nid`'s properties as D-Bus variants, only `names` when given. KeyError for an unknown id."""
        from dbus_fast import Variant

        wanted = set(names)
        return {k: Variant(SIGNATURES[k], v) for k, v in self.nodes[nid].props.items() if not wanted or k in wanted}

    def tree(self, nid: int, depth: int, names: Iterable[str] = ()) -> list[Any]:
        """`(ia{sv}av)` for `nid` and `depth` levels below it (-1 or any negative: all). KeyError if unknown."""
        from dbus_fast import Variant

        names = tuple(names)
        node = self.nodes[nid]
        children: list[Any] = []
        if depth != 0:
            below = depth - 1 if depth > 0 else -1
            children = [Variant("(ia{sv}av)", self.tree(c, below, names)) for c in node.children]
        return [nid, self.props(nid, names), children]

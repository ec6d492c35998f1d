"""Tray benchmarks on a private desktop (Xvfb + D-Bus + the test StatusNotifierWatcher [+ trayer]).

    .venv/bin/python bench/tray_figures.py [startup|memory|latency|all|memory-xembed]

startup        spawn of the tray process -> its item registered with the StatusNotifierWatcher
               (the SNI backend: StatusNotifierItem + dbusmenu over dbus-fast), median of 5   target <= 0.5 s
memory         RSS of the tray process (SNI backend) with 20 minimal stdio servers Available  target <= 75 MB
               (and, as the baseline, the same config headless: the tray's own cost is the difference)
latency        state change (store commit, traced in-process) -> ItemsPropertiesUpdated or LayoutUpdated
               received over D-Bus: 40 Disable/Enable clicks sent as dbusmenu Events (a submenu
               changes: LayoutUpdated) and 20 saved renames (a label: ItemsPropertiesUpdated)  target p50 <= 20 ms
memory-xembed  the same RSS with the PyGObject/pystray fallback (appindicator), for comparison

Needs the Debian packages of the tray tests (see scripts/test); PyGObject only for the test watcher
and memory-xembed (the SNI tray runs with `import gi` blocked here).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "ui"))

from _common import isolated_env, percentile, tempdir  # noqa: E402
from sni_client import SniClient  # noqa: E402
from ui_testlib import MINIMAL_SERVER, Desktop, Procs, TrayMenu, wait_for  # noqa: E402


def start_desktop(procs: Procs, work: Path, *, watcher: bool, trayer: bool = False) -> Desktop:
    display = procs.xvfb()
    env = isolated_env(work)
    env.update(DISPLAY=f":{display}", NO_AT_BRIDGE="1", GTK_A11Y="none")
    bus = procs.start(["dbus-daemon", "--session", "--nofork", "--print-address=1"], env=env,
                      stdout=subprocess.PIPE, text=True)
    env["DBUS_SESSION_BUS_ADDRESS"] = bus.stdout.readline().strip()
    d = Desktop(env, env["DBUS_SESSION_BUS_ADDRESS"], work, procs)
    if trayer:
        procs.start(["trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel", "--width", "120",
                     "--height", "32", "--SetDockType", "true", "--transparent", "false", "--tint", "0x303030"],
                    env=env)
        wait_for(lambda: '"panel"' in d.run("xwininfo", "-root", "-tree"), what="trayer")
    if watcher:
        p = procs.start([sys.executable, str(REPO / "tests" / "ui" / "sni_watcher.py")], env=env,
                        stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "READY"
    return d


def no_gi(work: Path) -> str:
    d = work / "no-gi"
    (d / "gi").mkdir(parents=True, exist_ok=True)
    (d / "gi" / "__init__.py").write_text("raise ImportError('blocked: the SNI tray needs no PyGObject')\n")
    return str(d)


def servers(n: int, tag: str) -> dict:
    return {"mcpServers": {f"s{i}": {"name": f"Server {i}", "command": sys.executable,
                                     "args": [str(MINIMAL_SERVER), "--marker", f"{tag}-{i}"]} for i in range(n)}}


def start_tray(d: Desktop, cfg: Path, trace: Path | None = None, *, gtk: bool = False) -> subprocess.Popen:
    env = dict(d.env)
    if trace is not None:
        env["BROXY_TRAY_TRACE"] = str(trace)
    if gtk:
        env["PYSTRAY_BACKEND"] = "appindicator"
        env["GDK_GL"] = "disable"  # as the automatic fallback sets it (keeps Mesa's GL driver out)
    else:
        env["PYTHONPATH"] = no_gi(d.workdir)
    return d.procs.start([sys.executable, "-m", "broxy_tray.ui.tray", "--config", str(cfg)], env=env, cwd=str(REPO))


def stop(d: Desktop, p: subprocess.Popen) -> None:
    d.procs.stop(p)


def bench_startup(runs: int = 5) -> None:
    procs, work = Procs(), tempdir()
    try:
        d = start_desktop(procs, work, watcher=True)
        cfg = work / "mcp.json"
        cfg.write_text(json.dumps(servers(3, "startup"), indent=2))
        spawn, inside = [], []
        for i in range(runs):
            trace = work / f"trace-{i}.log"
            t0 = time.time()
            p = start_tray(d, cfg, trace)
            wait_for(lambda: "sni registered" in (trace.read_text() if trace.exists() else ""), 20,
                     interval=0.005, what="item registered")
            lines = {what: float(t) for t, what in (ln.split(" ", 1) for ln in trace.read_text().splitlines())}
            registered = lines["sni registered"]
            spawn.append((registered - t0) * 1000)
            inside.append((registered - lines["process start"]) * 1000)
            stop(d, p)
        print(f"tray_startup: spawn -> item registered with the StatusNotifierWatcher (SNI backend): median "
              f"{statistics.median(spawn):.0f} ms, min {min(spawn):.0f}, max {max(spawn):.0f} (n={runs}; "
              f"of which interpreter start and imports {statistics.median(spawn) - statistics.median(inside):.0f} ms; "
              f"target <= 500 ms)")
    finally:
        procs.stop_all()


def rss_mib(pid: int) -> tuple[float, float]:
    vals = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            vals[k] = int(v.split()[0]) / 1024
    return vals["VmRSS"], vals["VmHWM"]


def bench_memory(gtk: bool = False) -> None:
    procs, work = Procs(), tempdir()
    try:
        d = start_desktop(procs, work, watcher=True)
        cfg = work / "mcp.json"
        cfg.write_text(json.dumps(servers(20, "memory"), indent=2))
        p = start_tray(d, cfg, gtk=gtk)
        menu = TrayMenu(d)
        t0 = time.monotonic()
        menu.wait_label("broxy-tray — 20 of 20 available", 60)
        ready = time.monotonic() - t0
        time.sleep(5)
        rss, peak = rss_mib(p.pid)
        status = Path(f"/proc/{p.pid}/status").read_text()
        anon = int(status.split("RssAnon:")[1].split()[0]) / 1024
        pss = int(Path(f"/proc/{p.pid}/smaps_rollup").read_text().split("Pss:")[1].split()[0]) / 1024
        maps = Path(f"/proc/{p.pid}/maps").read_text()
        toolkit = "GTK + AppIndicator loaded" if "libgtk-3" in maps else "no GTK, no GObject introspection"
        what = "XEmbed fallback (pystray appindicator)" if gtk else "SNI backend (dbus-fast)"
        target = "for comparison" if gtk else "target <= 75 MB"
        stop(d, p)
        base = headless_rss(d, cfg)
        print(f"tray_memory: the same 20 servers headless (run --headless, no tray): RSS {base:.1f} MiB")
        print(f"tray_memory: 20 connected stdio servers, {what}, {toolkit}: RSS {rss:.1f} MiB "
              f"(headless + {rss - base:.1f} MiB), "
              f"peak {peak:.1f} MiB, private (RssAnon) {anon:.1f} MiB, PSS {pss:.1f} MiB ({target}); "
              f"all available {ready:.1f} s after the menu appeared")
    finally:
        procs.stop_all()


def headless_rss(d: Desktop, cfg: Path) -> float:
    """RSS of `broxy-tray run --headless` on the same config, 5 s after every server is Available."""
    env = {k: v for k, v in d.env.items() if k not in ("DISPLAY", "DBUS_SESSION_BUS_ADDRESS")}
    p = d.procs.start([sys.executable, "-m", "broxy_tray", "run", "--headless", "--config", str(cfg)], env=env,
                      stdout=subprocess.PIPE, text=True, cwd=str(REPO))
    available = set()
    for line in p.stdout:  # type: ignore[union-attr]
        if ": Available" in line:
            available.add(line.split("[", 1)[1].split("]", 1)[0])
            if len(available) == 20:
                break
    time.sleep(5)
    rss, _ = rss_mib(p.pid)
    d.procs.stop(p)
    return rss


async def _latency(d: Desktop, p: subprocess.Popen, cfg: Path, trace: Path, toggles: int, renames: int) -> None:
    c = await SniClient.connect(d.bus_address)
    try:
        await c.find_item(30)
        await c.wait_label("broxy-tray — 20 of 20 available", 60)
        await asyncio.sleep(0.5)
        rss_before, _ = rss_mib(p.pid)
        trace.write_text("")
        c.signals.clear()
        for i in range(toggles):  # a server's submenu changes: LayoutUpdated
            if i % 2 == 0:
                await c.click("● Server 7", "Disable")
                want = "○ Server 7 — Disabled"
            else:
                await c.click("○ Server 7", "Enable")
                want = "● Server 7 — Available"
            await c.wait_label(want, 10)
            await asyncio.sleep(0.3)
        config = json.loads(cfg.read_text())
        for i in range(renames):  # only a label changes (a saved display name): ItemsPropertiesUpdated
            name = f"Server 3 ({i})"
            config["mcpServers"]["s3"]["name"] = name
            tmp = cfg.with_name(".mcp.json.saving")
            tmp.write_text(json.dumps(config, indent=2))
            tmp.replace(cfg)
            await c.wait_label(f"● {name} — Available", 10)
            await asyncio.sleep(0.3)
        await asyncio.sleep(0.5)
        rss_after, _ = rss_mib(p.pid)
        received = [(t, member) for t, member, _ in c.signals if member in ("ItemsPropertiesUpdated", "LayoutUpdated")]
    finally:
        c.close()
    print(f"tray_latency: RSS {rss_before:.1f} MiB before the clicks, {rss_after:.1f} MiB after")
    lines = [ln.split() for ln in trace.read_text().splitlines()]
    states = [(float(t), int(r)) for t, kind, r in (ln for ln in lines if len(ln) == 3) if kind == "state"]
    menus = [(float(t), int(r)) for t, kind, r in (ln for ln in lines if len(ln) == 3) if kind == "menu"]
    by_kind: dict[str, list[float]] = {"LayoutUpdated": [], "ItemsPropertiesUpdated": []}
    shown_rev = -1
    for t_menu, rev in menus:
        pending = [ts for ts, r in states if shown_rev < r <= rev]
        shown_rev = rev
        after = [(t, member) for t, member in received if t >= t_menu - 0.05]
        if pending and after:
            by_kind[after[0][1]].append(max(0.0, after[0][0] - min(pending)) * 1000)
            received.remove(after[0])
    every = by_kind["LayoutUpdated"] + by_kind["ItemsPropertiesUpdated"]
    for kind, values in by_kind.items():
        if values:
            print(f"tray_latency:   {kind}: p50 {percentile(values, 50):.1f} ms, p95 {percentile(values, 95):.1f} ms, "
                  f"max {max(values):.1f} ms (n={len(values)})")
    print(f"tray_latency: state change -> ItemsPropertiesUpdated/LayoutUpdated received: "
          f"p50 {percentile(every, 50):.1f} ms, p95 {percentile(every, 95):.1f} ms, max {max(every):.1f} ms "
          f"(n={len(every)} menu updates from {toggles} clicks and {renames} renames; target p50 <= 20 ms)")


def bench_latency(toggles: int = 40, renames: int = 20) -> None:
    procs, work = Procs(), tempdir()
    try:
        d = start_desktop(procs, work, watcher=True)
        cfg = work / "mcp.json"
        cfg.write_text(json.dumps(servers(20, "latency"), indent=2))
        trace = work / "trace.log"
        p = start_tray(d, cfg, trace)
        asyncio.run(_latency(d, p, cfg, trace, toggles, renames))
        stop(d, p)
    finally:
        procs.stop_all()


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    if what in ("startup", "all"):
        bench_startup()
    if what in ("memory", "all"):
        bench_memory()
    if what in ("latency", "all"):
        bench_latency()
    if what == "memory-xembed":
        bench_memory(gtk=True)

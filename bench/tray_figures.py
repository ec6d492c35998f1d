"""Tray benchmarks on a private desktop (Xvfb + D-Bus + trayer [+ a StatusNotifierWatcher]).

    .venv/bin/python bench/tray_figures.py [startup|memory|latency|all]

startup  time from spawning the tray process to its icon docked in trayer (XEmbed), median of 5   target <= 1.5 s
memory   RSS of the tray process (GTK included) with 20 minimal stdio servers Available            target <= 100 MB
latency  state change (store commit, traced in-process) -> the menu's LayoutUpdated received over
         D-Bus (dbusmenu), for 40 Disable/Enable clicks made through dbusmenu                     target <= 100 ms

Needs the Debian packages of the tray tests (see scripts/test) and PyGObject.
"""

from __future__ import annotations

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
from ui_testlib import MINIMAL_SERVER, Desktop, Procs, TrayMenu, wait_for  # noqa: E402


def start_desktop(procs: Procs, work: Path, *, watcher: bool) -> Desktop:
    xvfb = procs.start(["Xvfb", "-displayfd", "1", "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                       stdout=subprocess.PIPE, text=True)
    env = isolated_env(work)
    env.update(DISPLAY=f":{xvfb.stdout.readline().strip()}", NO_AT_BRIDGE="1", GTK_A11Y="none")
    bus = procs.start(["dbus-daemon", "--session", "--nofork", "--print-address=1"], env=env,
                      stdout=subprocess.PIPE, text=True)
    env["DBUS_SESSION_BUS_ADDRESS"] = bus.stdout.readline().strip()
    d = Desktop(env, env["DBUS_SESSION_BUS_ADDRESS"], work, procs)
    procs.start(["trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel", "--width", "120",
                 "--height", "32", "--SetDockType", "true", "--transparent", "false", "--tint", "0x303030"], env=env)
    wait_for(lambda: '"panel"' in d.run("xwininfo", "-root", "-tree"), what="trayer")
    if watcher:
        p = procs.start([sys.executable, str(REPO / "tests" / "ui" / "sni_watcher.py")], env=env,
                        stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "READY"
    return d


def servers(n: int, tag: str) -> dict:
    return {"mcpServers": {f"s{i}": {"name": f"Server {i}", "command": sys.executable,
                                     "args": [str(MINIMAL_SERVER), "--marker", f"{tag}-{i}"]} for i in range(n)}}


def start_tray(d: Desktop, cfg: Path, trace: Path | None = None) -> subprocess.Popen:
    env = dict(d.env)
    if trace is not None:
        env["BROXY_TRAY_TRACE"] = str(trace)
    return d.procs.start([sys.executable, "-m", "broxy_tray.ui.tray", "--config", str(cfg)], env=env, cwd=str(REPO))


def stop(d: Desktop, p: subprocess.Popen) -> None:
    d.procs.stop(p)


def bench_startup(runs: int = 5) -> None:
    procs, work = Procs(), tempdir()
    try:
        d = start_desktop(procs, work, watcher=False)
        cfg = work / "mcp.json"
        cfg.write_text(json.dumps(servers(3, "startup"), indent=2))
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            p = start_tray(d, cfg)
            wait_for(d.docked_icon, 20, interval=0.005, what="icon docked")
            times.append((time.perf_counter() - t0) * 1000)
            stop(d, p)
            wait_for(lambda: d.docked_icon() is None, 10, what="icon gone")
        print(f"tray_startup: spawn -> icon docked (XEmbed, appindicator backend): median "
              f"{statistics.median(times):.0f} ms, min {min(times):.0f}, max {max(times):.0f} (n={runs}; "
              f"target <= 1500 ms)")
    finally:
        procs.stop_all()


def rss_mib(pid: int) -> tuple[float, float]:
    vals = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            vals[k] = int(v.split()[0]) / 1024
    return vals["VmRSS"], vals["VmHWM"]


def bench_memory() -> None:
    procs, work = Procs(), tempdir()
    try:
        d = start_desktop(procs, work, watcher=True)
        cfg = work / "mcp.json"
        cfg.write_text(json.dumps(servers(20, "memory"), indent=2))
        p = start_tray(d, cfg)
        menu = TrayMenu(d)
        t0 = time.monotonic()
        menu.wait_label("broxy-tray — 20 of 20 available", 60)
        ready = time.monotonic() - t0
        time.sleep(5)
        rss, peak = rss_mib(p.pid)
        status = Path(f"/proc/{p.pid}/status").read_text()
        anon = int(status.split("RssAnon:")[1].split()[0]) / 1024
        pss = int(Path(f"/proc/{p.pid}/smaps_rollup").read_text().split("Pss:")[1].split()[0]) / 1024
        gl = 0.0
        cur = ""
        for line in Path(f"/proc/{p.pid}/smaps").read_text().splitlines():
            parts = line.split()
            if parts and "-" in parts[0] and not parts[0].endswith(":"):
                cur = parts[5] if len(parts) > 5 else ""
            elif parts and parts[0] == "Rss:" and ("libLLVM" in cur or "_dri.so" in cur):
                gl += int(parts[1]) / 1024
        print(f"tray_memory: of which private (RssAnon) {anon:.1f} MiB, PSS {pss:.1f} MiB, "
              f"Mesa GL driver mapped by GDK (libLLVM + *_dri.so, shared file pages) {gl:.1f} MiB")
        print(f"tray_memory: 20 connected stdio servers (GTK + AppIndicator + dbusmenu): RSS {rss:.1f} MiB, "
              f"peak {peak:.1f} MiB (target <= 100 MB); all available {ready:.1f} s after the menu appeared")
        stop(d, p)
    finally:
        procs.stop_all()


def bench_latency(toggles: int = 40) -> None:
    from gi.repository import GLib

    procs, work = Procs(), tempdir()
    try:
        d = start_desktop(procs, work, watcher=True)
        cfg = work / "mcp.json"
        cfg.write_text(json.dumps(servers(20, "latency"), indent=2))
        trace = work / "trace.log"
        p = start_tray(d, cfg, trace)
        menu = TrayMenu(d)
        menu.wait_label("broxy-tray — 20 of 20 available", 60)
        received: list[float] = []

        def on_signal(*_a: object) -> None:
            received.append(time.time())

        d.bus.signal_subscribe(None, "com.canonical.dbusmenu", "LayoutUpdated", menu.menu_path, None, 0, on_signal)
        ctx = GLib.MainContext.default()

        def pump(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                while ctx.pending():
                    ctx.iteration(False)
                time.sleep(0.002)

        pump(0.5)
        rss_before, _ = rss_mib(p.pid)
        trace.write_text("")
        received.clear()
        for i in range(toggles):
            if i % 2 == 0:
                menu.click("● Server 7", "Disable")
                want = "○ Server 7 — Disabled"
            else:
                menu.click("○ Server 7", "Enable")
                want = "● Server 7 — Available"
            end = time.monotonic() + 10
            while time.monotonic() < end:
                pump(0.02)
                if any(lb.startswith(want) for lb in menu.labels()):
                    break
            pump(0.3)
        pump(0.5)
        rss_after, _ = rss_mib(p.pid)
        print(f"tray_latency: RSS {rss_before:.1f} MiB before the clicks, {rss_after:.1f} MiB after")
        lines = [ln.split() for ln in trace.read_text().splitlines()]
        states = [(float(t), int(r)) for t, kind, r in lines if kind == "state"]
        menus = [(float(t), int(r)) for t, kind, r in lines if kind == "menu"]
        if "--debug" in sys.argv:
            t0 = states[0][0]
            for t, kind, r in lines[:12]:
                print(f"  {kind:6} rev {r:>4} +{(float(t) - t0) * 1000:8.1f} ms")
            print("  received:", [round((t - t0) * 1000, 1) for t in received[:6]])
        latencies = []
        shown_rev = -1
        for t_menu, rev in menus:
            pending = [ts for ts, r in states if shown_rev < r <= rev]
            shown_rev = rev
            after = [t for t in received if t >= t_menu]
            if pending and after:
                latencies.append((after[0] - min(pending)) * 1000)
        print(f"tray_latency: state change -> dbusmenu LayoutUpdated received: "
              f"p50 {percentile(latencies, 50):.1f} ms, p95 {percentile(latencies, 95):.1f} ms, "
              f"max {max(latencies):.1f} ms (n={len(latencies)} menu updates from {toggles} clicks; target <= 100 ms)")
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

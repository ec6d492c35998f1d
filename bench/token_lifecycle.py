"""Token lifecycle figures: refresh grants per token lifetime, requests that waited while valid, warm restart.

    python bench/token_lifecycle.py            # all three
    python bench/token_lifecycle.py schedule   # 1 + 2: a simulated run (default 7 days, 20 servers, 30 s … 24 h)
    python bench/token_lifecycle.py restart    # 3: SIGTERM during a held refresh, then a warm restart

1. and 2. run the app's real AuthCoordinator against the test AS in-process
on a virtual-time loop (tests/auth/lifecycle_sim.py), with requests at random
moments and every refresh answer taking 0.5 simulated seconds, so a request
that waits for one is visible. Grants are counted by the AS.

3. runs `broxy-tray run --headless` with a private gnome-keyring against the
loopback AS (rotating refresh tokens, reuse detection), holds the answer to
a refresh, sends SIGTERM, releases the answer, restarts, and counts what the
restart asked of the AS.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from _common import isolated_env, start_headless, tempdir

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "auth"))

LIFETIMES = [30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800, 14400, 21600, 28800,
             36000, 43200, 64800, 86400]


def schedule(days: float = 7.0) -> None:
    import lifecycle_sim as ls
    from broxy_tray.auth._schedule import refresh_margin
    from virtual_time import VirtualClock, run

    duration = days * 86400
    clock = VirtualClock()

    async def main():  # type: ignore[no-untyped-def]
        sim = await ls.start(clock, {f"s{i:02d}": float(lt) for i, lt in enumerate(LIFETIMES)})
        ls.lifetime_switch(sim)
        await ls.traffic(sim, duration, mean_gap=300)
        await sim.close()
        return sim

    t0 = time.perf_counter()
    sim = run(main, clock)
    seconds = time.perf_counter() - t0
    print(f"simulated {days:g} days, 20 servers, in {seconds:.1f} s")
    print(f"{'server':>6} {'lifetime':>9} {'grants':>7} {'lifetimes':>10} {'grants/lifetime':>15} {'requests':>9} "
          f"{'waited(valid)':>13}")
    ratios = []
    for sid, st in sim.stats.items():
        grants = sim.grants(sid)
        # a "token lifetime" here is the span a token is in use: L minus the refresh margin
        lifetimes = duration / (st.lifetime - refresh_margin(st.lifetime))
        ratio = grants / int(lifetimes) if int(lifetimes) else float(grants == 0)
        ratios.append(ratio)
        print(f"{sid:>6} {st.lifetime:>8.0f}s {grants:>7} {lifetimes:>10.1f} {ratio:>15.3f} {st.requests:>9} "
              f"{st.waited_while_valid:>13}")
    waited_valid = sum(st.waited_while_valid for st in sim.stats.values())
    requests = sum(st.requests for st in sim.stats.values())
    print(f"refresh grants per token lifetime, per server: min {min(ratios):.3f} max {max(ratios):.3f} "
          f"(target = 1; reuse detections {sim.auth.stats['reuse_detected']}, invalid_grant "
          f"{sim.auth.stats['invalid_grant']}, browser opens {len(sim.browser_opens)})")
    print(f"requests that waited for a refresh while their token was valid: {waited_valid} of {requests} (target 0)")


def restart() -> None:
    from authserver import AuthServer
    from protected_mcp import ProtectedMCPServer
    from secret_service import private_secret_service
    from signin_testlib import browser_command

    d = tempdir()
    with AuthServer(access_token_ttl=6) as auth, ProtectedMCPServer(auth) as rs, private_secret_service(d) as ss:
        path = d / "mcp.json"
        path.write_text(json.dumps({"mcpServers": {"sec": {"url": rs.url}}}))
        env = dict(isolated_env(d), **{k: v for k, v in ss.env.items() if not k.startswith("XDG_STATE")})
        env["BROWSER"] = browser_command(d)
        proc = start_headless(path, env)
        _available(proc)
        auth.set_fault("token", "hold")
        _wait(lambda: auth.stats["held"] == 1, "a refresh in flight")
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        time.sleep(0.5)
        auth.release()
        rc = proc.wait(15)
        quit_seconds = time.monotonic() - t0
        auth.clear_faults()
        before = {k: auth.count(k) for k in ("authorize", "register")}
        reuse_before = auth.stats["reuse_detected"]
        proc = start_headless(path, env)
        _available(proc)
        proc.terminate()
        proc.wait(15)
        print(f"warm restart after SIGTERM during a refresh (rotating AS, gnome-keyring): "
              f"{auth.count('authorize') - before['authorize']} authorization requests, "
              f"{auth.count('register') - before['register']} registrations, "
              f"{auth.stats['reuse_detected'] - reuse_before} reuse detections (target 0, 0, 0); "
              f"quit took {quit_seconds:.1f} s with the answer held 0.5 s (exit {rc})")


def _available(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        e = json.loads(line)
        if e["event"] == "status" and e["status"] == "Available":
            return
    raise RuntimeError("the runner exited before the server was Available")


def _wait(pred, what: str, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    if which in ("all", "schedule"):
        schedule(float(sys.argv[2]) if len(sys.argv) > 2 else 7.0)
    if which in ("all", "restart"):
        restart()

"""The token lifecycle in simulated time: schedule, single flight, outages, sleep, removal, shutdown.

The app's real coordinator runs against the strict test AS served in-process
on a `virtual_time` loop (see lifecycle_sim.py); every count is the AS's own.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

import lifecycle_sim as ls
from broxy_tray.auth._coordinator import REFRESH_SETTLE
from broxy_tray.auth._lifecycle import NAP, Phase
from broxy_tray.auth._schedule import RETRY_MAX, refresh_due_at, refresh_margin, retry_delay
from broxy_tray.auth._tokens import TokenSet
from broxy_tray.config import AuthAction
from virtual_time import VirtualClock, run

HOUR = 3600.0
WEEK = 7 * 24 * HOUR
WEEK_LIFETIMES = [30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800, 14400, 21600, 28800,
                  36000, 43200, 64800, 86400]


def simulate(body, lifetimes: dict[str, float], **options):  # type: ignore[no-untyped-def]
    """Run `body(sim)` on a virtual-time loop with servers already signed in."""
    clock = VirtualClock()

    async def main():  # type: ignore[no-untyped-def]
        sim = await ls.start(clock, lifetimes, **options)
        ls.lifetime_switch(sim)
        try:
            return await body(sim)
        finally:
            await sim.close()

    return run(main, clock)


async def until(pred, what: str, limit: float = 24 * HOUR, step: float = 1.0) -> None:  # type: ignore[no-untyped-def]
    waited = 0.0
    while not pred():
        if waited > limit:
            raise AssertionError(f"never happened in {limit:g} simulated seconds: {what}")
        await asyncio.sleep(step)
        waited += step


# -- the schedule -------------------------------------------------------------------------


@pytest.mark.parametrize(("lifetime", "margin"), [(5, 2.5), (25, 12.5), (120, 60), (300, 60), (3600, 720),
                                                  (86400, 17280)])
def test_refresh_margin_for_every_lifetime(lifetime, margin):
    assert refresh_margin(lifetime) == pytest.approx(margin)
    assert refresh_margin(lifetime) <= lifetime / 2, "never before half the lifetime has passed"
    tokens = TokenSet("a", expires_at=1000.0 + lifetime, issued_at=1000.0, refresh_token="r")
    assert refresh_due_at(tokens) == pytest.approx(1000.0 + lifetime - margin)


def test_due_time_without_an_issue_time_uses_the_fixed_margin():
    assert refresh_due_at(TokenSet("a", expires_at=5000.0)) == 4940.0
    assert refresh_due_at(TokenSet("a")) == float("inf")


def test_retry_delays_double_with_jitter_up_to_five_minutes():
    for attempt, nominal in enumerate([1, 2, 4, 8, 16, 32, 64, 128, 256]):
        assert retry_delay(attempt, lambda: 0.0) == pytest.approx(nominal * 0.8)
        assert retry_delay(attempt, lambda: 1.0) == pytest.approx(min(RETRY_MAX, nominal * 1.2))
    assert retry_delay(8, lambda: 1.0) == RETRY_MAX and retry_delay(40, lambda: 0.5) == RETRY_MAX


# -- long runs ----------------------------------------------------------------------------


@pytest.mark.timeout(600)
def test_simulated_week_twenty_servers():
    lifetimes = {f"s{i:02d}": float(lt) for i, lt in enumerate(WEEK_LIFETIMES)}

    async def body(sim):  # type: ignore[no-untyped-def]
        await ls.traffic(sim, WEEK, mean_gap=900)
        return sim

    sim = simulate(body, lifetimes)
    for sid, st in sim.stats.items():
        expected = ls.expected_refreshes(st.lifetime, WEEK)
        assert abs(sim.grants(sid) - expected) <= 1, (sid, st.lifetime, sim.grants(sid), expected)
        assert st.requests > 100 and st.failed == 0 and st.waited == 0, st
    assert sim.browser_opens == []
    assert sim.auth.stats["invalid_grant"] == 0 and sim.auth.stats["reuse_detected"] == 0
    assert sum(sim.grants(sid) for sid in lifetimes) == sim.auth.stats["refresh_grants"]


@pytest.mark.parametrize("lifetime", [5.0, 25.0])
def test_short_tokens_refresh_once_per_lifetime_under_heavy_traffic(lifetime):
    async def body(sim):  # type: ignore[no-untyped-def]
        await ls.traffic(sim, 20 * lifetime, mean_gap=0.05)  # about 20 requests a second
        return sim

    sim = simulate(body, {"s": lifetime}, refresh_delay=0.2)
    st = sim.stats["s"]
    assert st.requests > 300 * lifetime / 25 and st.failed == 0 and st.waited_while_valid == 0
    assert abs(sim.grants("s") - ls.expected_refreshes(lifetime, 20 * lifetime)) <= 1
    ages = [g.token_age for g in sim.auth.refresh_grants()]
    assert ages and min(ages) >= lifetime / 2 - 0.01, "never refreshed before half its life"


def test_two_hundred_requests_at_expiry_make_one_refresh():
    async def body(sim):  # type: ignore[no-untyped-def]
        sim.coordinator.lifecycle("s").stop()  # nobody refreshed ahead: the requests meet an expired token
        sim.clock.suspend(HOUR + 1)
        results = await asyncio.gather(*(sim.request("s") for _ in range(200)))
        return sim, results

    sim, results = simulate(body, {"s": HOUR})
    assert all(results) and sim.stats["s"].waited == 200
    assert sim.grants("s", outcome=None) == 1


# -- sleep and wake -----------------------------------------------------------------------


def test_resume_after_three_hours_refreshes_once():
    async def body(sim):  # type: ignore[no-untyped-def]
        await ls.traffic(sim, 30 * 60, mean_gap=60)
        before = {sid: sim.grants(sid) for sid in ("busy", "idle")}
        sim.clock.suspend(3 * HOUR)  # monotonic timers stand still, the wall clock moves on
        burst = await asyncio.gather(*(sim.request("busy") for _ in range(5)))
        after_burst = sim.grants("busy") - before["busy"]
        await asyncio.sleep(NAP + 1)  # the idle server is noticed within one nap
        idle_after = sim.grants("idle") - before["idle"]
        await asyncio.sleep(5 * 60)
        return sim, burst, after_burst, idle_after, {sid: sim.grants(sid) - before[sid] for sid in before}

    sim, burst, after_burst, idle_after, total = simulate(body, {"busy": HOUR, "idle": HOUR})
    assert all(burst) and after_burst == 1, "the requests after resume share one refresh"
    assert idle_after == 1, "a server without requests refreshes within a nap after resume"
    assert total == {"busy": 1, "idle": 1}, "and nothing more until the new tokens are due"
    assert sim.browser_opens == [] and sim.auth.stats["reuse_detected"] == 0


# -- outages and faults -------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["down", "500", "drop", "timeout"])
def test_outage_backs_off_then_recovers_without_browser(fault):
    outage = 120.0

    async def body(sim):  # type: ignore[no-untyped-def]
        due = 0.8 * HOUR
        await asyncio.sleep(due - 5)
        if fault == "down":
            sim.auth.down = True
        else:
            sim.auth.set_fault("token", {"timeout": "hang"}.get(fault, fault))
        lifecycle = sim.coordinator.lifecycle("s")
        for _ in range(int(outage)):
            await asyncio.sleep(1)
            await sim.request("s")  # the token is still valid: used at once
        phase = lifecycle.phase
        sim.auth.down = False
        sim.auth.clear_faults()
        sim.auth.release()
        await until(lambda: sim.grants("s") == 1, "recovery")
        return sim, phase

    sim, phase = simulate(body, {"s": HOUR}, request_timeout=10.0, refresh_delay=0)
    assert phase is Phase.BACKOFF
    # refresh attempts as the AS saw them (down: refused connections; else token requests after the code grant)
    attempts = sim.auth.stats["refused"] if fault == "down" else sim.auth.count("token") - 1
    # 1 + 2 + 4 + 8 + 16 + 32 + 64 s (±20 %) within 2 min: 5 to 8 attempts, not one per request
    assert 4 <= attempts <= 9, attempts
    st = sim.stats["s"]
    assert st.failed == 0 and st.waited == 0
    assert sim.browser_opens == [] and sim.auth.stats["invalid_grant"] == 0


def test_answer_lost_after_rotation_with_a_grace_period_recovers():
    async def body(sim):  # type: ignore[no-untyped-def]
        sim.auth.set_fault("token", "hold", times=1, delay=40)  # processed, answered after the client gave up
        await until(lambda: sim.grants("s") == 2, "a refresh after the lost answer")
        return sim

    sim = simulate(body, {"s": HOUR}, request_timeout=10.0, refresh_delay=0, reuse_grace=60)
    assert sim.auth.stats["reuse_detected"] == 0 and sim.browser_opens == []


def test_invalid_grant_keeps_the_valid_access_token_until_expiry():
    async def body(sim):  # type: ignore[no-untyped-def]
        sim.auth.config.refresh_invalid_grant = True
        await asyncio.sleep(0.8 * HOUR + 1)
        lifecycle = sim.coordinator.lifecycle("s")
        phase = lifecycle.phase
        stored = (await sim.store.load("s")).tokens
        ok_until_expiry = [await sim.request("s") for _ in range(10)]
        await asyncio.sleep(0.2 * HOUR)
        after_expiry = await sim.server_auth("s").current_token()
        return sim, phase, stored, ok_until_expiry, after_expiry

    sim, phase, stored, ok, after = simulate(body, {"s": HOUR})
    assert phase is Phase.REFUSED
    assert stored.access_token and stored.refresh_token is None, "the dead refresh token is gone, the access token kept"
    assert all(ok) and after is None
    assert sim.grants("s", outcome=None) == 1, "one refused refresh, no retries"
    assert sim.browser_opens == [], "the sign-in waits for a request that needs it (one 401 → one sign-in)"


# -- removal, rename, sign-out, settings change, disable, quit ------------------------------


def _held(sim) -> None:  # type: ignore[no-untyped-def]
    sim.auth.set_fault("token", "hold", times=1)


async def _refresh_in_flight(sim, sid: str = "s") -> None:  # type: ignore[no-untyped-def]
    await until(lambda: sim.auth.stats["held"] >= 1, "a refresh held by the AS")
    assert sim.server_auth(sid).refreshing is not None


@pytest.mark.parametrize("action", ["clear", "drop-tokens", "drop-client", "sign-out"])
def test_result_of_an_ended_generation_is_dropped(action):
    async def body(sim):  # type: ignore[no-untyped-def]
        _held(sim)
        await _refresh_in_flight(sim)
        if action == "sign-out":
            await sim.coordinator.sign_out("s")  # waits ≤ 5 s for the held refresh, then ends it
        else:
            await sim.coordinator.apply((AuthAction(action, "s"),))
        after_action = await sim.store.load("s")
        sim.auth.release()
        await asyncio.sleep(30)
        return sim, after_action, await sim.store.load("s")

    sim, after_action, final = simulate(body, {"s": HOUR})
    assert sim.auth.stats["refreshed"] == 1, "the AS did issue new tokens"
    assert final == after_action, "…which were dropped, never saved"
    if action in ("clear", "drop-client"):
        assert final is None
    else:
        assert final is not None and final.tokens is None and final.registrations


def test_rename_while_refreshing_moves_the_rotated_token():
    async def body(sim):  # type: ignore[no-untyped-def]
        sim.auth.set_fault("token", "hold", times=1, delay=REFRESH_SETTLE / 2)
        await _refresh_in_flight(sim)
        await sim.coordinator.apply((AuthAction("move", "t", source="s"),))
        return sim, await sim.store.load("s"), await sim.store.load("t")

    sim, old, new = simulate(body, {"s": HOUR})
    assert old is None and new is not None
    assert sim.auth.refresh_token_active(new.tokens.refresh_token), "the newest refresh token moved along"


def test_disable_while_refreshing_keeps_the_landed_tokens():
    async def body(sim):  # type: ignore[no-untyped-def]
        _held(sim)
        await _refresh_in_flight(sim)
        sim.coordinator.forget_missing(replace(sim.config, servers=()))
        sim.auth.release()
        await asyncio.sleep(5)
        return sim, await sim.store.load("s")

    sim, stored = simulate(body, {"s": HOUR})
    assert sim.auth.refresh_token_active(stored.tokens.refresh_token)


@pytest.mark.parametrize("answer_after", [REFRESH_SETTLE / 2, None])
def test_quit_waits_at_most_five_seconds_for_a_refresh(answer_after):
    async def body(sim):  # type: ignore[no-untyped-def]
        sim.auth.set_fault("token", "hold", times=1, delay=answer_after or 0)
        await _refresh_in_flight(sim)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await sim.coordinator.close()
        waited = loop.time() - started
        sim.auth.release()
        await asyncio.sleep(10)
        return sim, waited, await sim.store.load("s")

    sim, waited, stored = simulate(body, {"s": HOUR})
    if answer_after:
        assert 0 < waited <= answer_after  # (the hold began up to a second before close())
        assert sim.auth.refresh_token_active(stored.tokens.refresh_token), "saved before quitting"
    else:
        assert waited == pytest.approx(REFRESH_SETTLE, abs=0.5)
        assert not sim.auth.refresh_token_active(stored.tokens.refresh_token)  # the answer never came


@pytest.mark.parametrize("how", ["disabled", "removed"])
def test_retries_stop_for_a_disabled_or_removed_server(how):
    async def body(sim):  # type: ignore[no-untyped-def]
        sim.auth.down = True
        await until(lambda: sim.auth.stats["refused"] >= 3, "a few failed refreshes")
        if how == "disabled":
            sim.coordinator.forget_missing(replace(sim.config, servers=()))
        else:
            await sim.coordinator.apply((AuthAction("clear", "s"),))
        tried = sim.auth.stats["refused"]
        await asyncio.sleep(2 * HOUR)
        return sim, tried

    sim, tried = simulate(body, {"s": HOUR})
    assert sim.auth.stats["refused"] == tried, "no retry after the server was disabled or removed"

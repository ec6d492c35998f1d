"""The orphan watchdog: a tiny process that ends the stdio servers' process groups when the app dies.

Every stdio server runs in a session of its own (so that stopping it reaches its grandchildren),
which also means nothing ends it when the app is killed with SIGKILL: a server that ignores EOF on
stdin, and every grandchild, would run on. The app starts this script once (`_orphans`), keeps the
write end of its stdin, and sends `+<pid>` / `-<pid>` for each server it starts / has stopped. When
stdin reaches EOF — the app exited, however it died — the script ends every group still listed
(SIGTERM, SIGKILL after `KILL_GRACE`) and exits.

It also keeps the list in a state file (`<prefix>.<own pid>.groups`), so that if the watchdog was
killed too, the app's next start reaps what is left (`reap_state_files`). Before a process is
signalled it must be ours: same boot, the session the server's leader created, started no earlier
than the leader, and the leader's pid not taken over by a new session (Linux: /proc; elsewhere
only live groups are signalled, by the watchdog that saw them start).

Standard library only, run by path: it starts in milliseconds and imports nothing of the app.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

KILL_GRACE = 2.0


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _stat(pid: int) -> tuple[int, int] | None:
    """(session id, start time in clock ticks since boot) of a live process, from /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2:].split()
    try:
        return int(fields[3]), int(fields[19])
    except (IndexError, ValueError):
        return None


def start_time(pid: int) -> int | None:
    st = _stat(pid)
    return st[1] if st else None


def members(sid: int, started: int) -> list[int]:
    """Processes of the session `sid` whose leader started at `started` (Linux); [] when it is not ours."""
    leader = _stat(sid)
    if leader is not None and leader[0] == sid and leader[1] != started:
        return []  # the pid was reused and leads a session of its own: nothing here is ours
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = _stat(int(name))
        if st is not None and st[0] == sid and st[1] >= started:
            out.append(int(name))
    return out


def end_sessions(groups: dict[int, int]) -> int:
    """SIGTERM every process of the listed sessions ({leader pid: start time}), SIGKILL what is left
    after `KILL_GRACE`. Returns how many processes were signalled."""
    linux = os.path.isdir("/proc/self")
    signalled = 0

    def targets() -> list[tuple[str, int]]:
        if linux:
            return [("pid", p) for sid, started in groups.items() for p in members(sid, started)]
        return [("group", sid) for sid in groups]

    def send(sig: int) -> int:
        n = 0
        for kind, ident in targets():
            try:
                (os.kill if kind == "pid" else os.killpg)(ident, sig)
                n += 1
            except (ProcessLookupError, PermissionError):
                pass
        return n

    signalled = send(signal.SIGTERM)
    if signalled:
        end = time.monotonic() + KILL_GRACE
        while time.monotonic() < end and targets():
            time.sleep(0.05)
        send(signal.SIGKILL)
    return signalled


def read_state(path: Path) -> dict[int, int]:
    """The groups listed in a state file (empty when it is unreadable or from another boot)."""
    try:
        data = json.loads(path.read_text())
        if data.get("boot") != _boot_id():
            return {}
        return {int(k): int(v) for k, v in data.get("groups", {}).items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def reap_state_files(prefix: Path) -> int:
    """At start: end the groups listed by a previous run's watchdog(s), then delete their files."""
    n = 0
    for path in prefix.parent.glob(f"{prefix.name}.*.groups"):
        groups = read_state(path)
        if groups and os.path.isdir("/proc/self"):  # elsewhere a listed pid cannot be told from a reused one
            n += end_sessions(groups)
        try:
            path.unlink()
        except OSError:
            pass
    return n


def _save(path: Path, groups: dict[int, int]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps({"boot": _boot_id(), "groups": {str(k): v for k, v in groups.items()}}))
        os.replace(tmp, path)
    except OSError:
        pass


def main(prefix: str) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # only EOF on stdin ends this process
    state = Path(f"{prefix}.{os.getpid()}.groups")
    groups: dict[int, int] = {}
    for line in sys.stdin.buffer:
        op = line.strip()
        try:
            pid = int(op[1:])
        except ValueError:
            continue
        if op[:1] == b"+":
            started = start_time(pid)
            if started is None and os.path.isdir("/proc/self"):
                continue  # already gone
            groups[pid] = started or 0
        elif op[:1] == b"-":
            groups.pop(pid, None)
        else:
            continue
        _save(state, groups)
    if groups:
        end_sessions(groups)
    try:
        state.unlink()
    except OSError:
        pass


if __name__ == "__main__":
    main(sys.argv[1])

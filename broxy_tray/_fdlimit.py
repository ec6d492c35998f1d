"""Raise the soft open-file limit toward the hard one at start.

The common soft limit is 1,024 descriptors while the hard limit is far higher; every HTTP
connection, control connection and stdio pipe costs one, so the default leaves little room under
load (the HTTP endpoint also caps its own share, see `proxy._http_guard`). Capped at `TARGET`,
since children inherit the limit and some old programs loop over every possible descriptor.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

TARGET = 16384


def raise_open_file_limit(target: int = TARGET) -> tuple[int, int] | None:
    """Set the soft RLIMIT_NOFILE to min(hard, target) if that is higher; returns (old, new) soft limits."""
    try:
        import resource
    except ImportError:  # Windows: no such limit
        return None
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return None
    infinity = resource.RLIM_INFINITY
    wanted = target if hard == infinity else min(hard, target)
    if soft != infinity and soft >= wanted:
        return soft, soft
    if soft == infinity:
        return soft, soft
    for candidate in (wanted, 10240):  # macOS refuses more than OPEN_MAX (10,240) with EINVAL
        if candidate <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (candidate, hard))
        except (OSError, ValueError):
            continue
        log.debug("open-file limit raised from %d to %d", soft, candidate)
        return soft, candidate
    return soft, soft

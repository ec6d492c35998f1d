"""Who is on the other end of a Unix socket: SO_PEERCRED on Linux, getpeereid() elsewhere."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import struct
from typing import Any


def peer_credentials(sock: Any) -> tuple[int, int | None]:
    """(uid, pid or None) of the process that connected `sock`. Raises OSError when unknown."""
    if hasattr(socket, "SO_PEERCRED"):  # Linux
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _gid = struct.unpack("3i", raw)
        return uid, pid
    return _getpeereid(sock.fileno()), None  # pragma: no cover - macOS / BSD


def _getpeereid(fd: int) -> int:  # pragma: no cover - macOS / BSD
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    uid, gid = ctypes.c_uint32(), ctypes.c_uint32()
    if libc.getpeereid(fd, ctypes.byref(uid), ctypes.byref(gid)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return uid.value

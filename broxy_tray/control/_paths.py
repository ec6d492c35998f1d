"""Where the control channel lives, and a private directory for it."""

from __future__ import annotations

import getpass
import hashlib
import os
import stat
import warnings
from pathlib import Path

from ._protocol import ControlError

APP_NAME = "broxy"
# sun_path is 108 bytes on Linux, 104 on macOS and the BSDs (NUL included).
MAX_SOCKET_PATH = 103


def config_key(config_path: Path | str) -> str:
    """The same key `_instance.InstanceLock` derives: one per real config file."""
    return hashlib.sha256(os.path.realpath(config_path).encode("utf-8")).hexdigest()[:16]


def runtime_dir() -> Path:
    """`platformdirs.user_runtime_dir("broxy")`; on Linux `$XDG_RUNTIME_DIR/broxy`."""
    import platformdirs

    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset and falls back to /tmp
        warnings.simplefilter("ignore")
        try:
            return Path(platformdirs.user_runtime_dir(APP_NAME, appauthor=False))
        except OSError as e:  # e.g. XDG_RUNTIME_DIR unset and /tmp/runtime-<uid> squatted by another user
            raise ControlError(
                f"no private runtime directory for the control socket: {e.strerror or e}"
                + ("" if "XDG_RUNTIME_DIR" in str(e) else "; set XDG_RUNTIME_DIR to a private directory")
            ) from None


def control_path(config_path: Path | str, directory: Path | None = None) -> Path:
    """The control channel for one config: a socket file, or a named pipe on Windows.

    On Windows the result is the pipe name as a `str` (`\\\\.\\pipe\\broxy-…`): not a file system path.
    """
    key = config_key(config_path)
    if os.name == "nt":  # pragma: no cover - Windows only
        # Pipe names are machine-wide: the user name keeps two users' pipes apart.
        user = hashlib.sha256(getpass.getuser().encode("utf-8")).hexdigest()[:8]
        return rf"\\.\pipe\broxy-{user}-{key}"  # type: ignore[return-value]
    return (directory or runtime_dir()) / f"{key}.sock"


def ensure_private_dir(directory: Path) -> None:
    """Create `directory` (and missing parents) as 0700; refuse one that is not ours or is a symlink.

    An existing directory of ours with looser permissions is tightened to 0700.
    """
    missing: list[Path] = []
    p = directory
    try:
        while not p.exists() and not p.is_symlink():
            missing.append(p)
            if p.parent == p:
                break
            p = p.parent
        for d in reversed(missing):
            try:
                os.mkdir(d, 0o700)
            except FileExistsError:
                pass
    except OSError as e:  # a parent we may not search (another user's directory)
        raise ControlError(f"cannot create {directory}: {e.strerror or e}") from None
    try:
        st = os.lstat(directory)
    except OSError as e:
        raise ControlError(f"cannot create {directory}: {e.strerror or e}") from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise ControlError(f"{directory} is not a directory (a symlink or file is in the way)")
    if st.st_uid != os.geteuid():
        raise ControlError(f"{directory} belongs to another user (uid {st.st_uid}); refusing to use it")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(directory, 0o700)


def check_socket_path(path: Path) -> None:
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ControlError(
            f"the control socket path is too long for this system ({len(os.fsencode(path))} bytes): {path}; "
            "set XDG_RUNTIME_DIR to a shorter directory"
        )

"""Server lifecycle: one supervised task per enabled server, holding a live connection."""

from ._live import Backoff, LiveRunner
from ._supervisor import ServerRunner, Supervisor, idle_runner

__all__ = ["Backoff", "LiveRunner", "ServerRunner", "Supervisor", "idle_runner"]

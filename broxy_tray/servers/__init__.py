"""Server lifecycle: one supervised task per enabled server."""

from ._supervisor import ServerRunner, Supervisor, idle_runner

__all__ = ["ServerRunner", "Supervisor", "idle_runner"]

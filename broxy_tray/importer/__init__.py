"""Moving an existing MCP set-up into broxy-tray: `broxy-tray import` and the client hand-over.

- `_locations`: where each client (Claude Desktop, Claude Code, Cursor, VS Code, Windsurf, Gemini CLI, Codex)
  keeps its servers, per OS.
- `_read`: one client file → raw entries, or a located error.
- `_map`: one entry → a broxy-tray entry (variables translated, literal credentials split off).
- `_plan`: dedupe, ids, the printed table.
- `_apply`: scan, plan, and the minimal edit of mcp.json (secrets to the sink passed in).
- `_offer`: the tray's "Import from …" item.
- `_handover`: `client-config --install/--uninstall` for a client's own file (backup, exact undo).
"""

from ._apply import Result, Scan, SecretSink, apply, default_sink, preview, scan
from ._locations import CLIENT_NAMES, CLIENTS, user_file
from ._offer import ImportOffer
from ._plan import Plan, format_table

__all__ = ["CLIENTS", "CLIENT_NAMES", "ImportOffer", "Plan", "Result", "Scan", "SecretSink", "apply", "default_sink", "format_table", "preview",
           "scan", "user_file"]

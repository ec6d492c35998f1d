"""broxy-tray: keeps your MCP servers connected and signed in, from the system tray."""

__version__ = "0.1.0"

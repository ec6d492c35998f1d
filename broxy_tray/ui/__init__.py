"""User interfaces over the core: the headless terminal runner (and, later, the tray)."""

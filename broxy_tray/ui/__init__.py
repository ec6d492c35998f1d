"""User interfaces over the core.

headless       the terminal runner (one line per change)
tray           pystray glue, Linux backend choice, and the runner owning the threads (DESIGN §4)
menu           AppState -> menu model (pure)
icons          the icon variants and platform formats, drawn with Pillow
notifications  which notifications to show (pure policy) and sending them (desktop-notifier)
desktop        the OS's openers and clipboard
doctor         `broxy-tray doctor`: the facts a bug report needs
"""

"""User interfaces over the core.

headless       the terminal runner (one line per change)
tray           the runner every tray shares: App on a loop, coalesced refreshes, clicks → intents
_backend       which tray runs here (SNI, pystray, or none and why)
sni/           the Linux tray: StatusNotifierItem + dbusmenu over D-Bus (dbus-fast), on the app's loop
_pystray_tray  pystray: macOS, Windows, the Linux XEmbed fallback (toolkit on the main thread)
menu           AppState -> menu model (pure)
icons          the icon variants and platform formats, drawn with Pillow
notifications  which notifications to show (pure policy) and sending them (desktop-notifier)
desktop        the OS's openers and clipboard
doctor         `broxy-tray doctor`: the facts a bug report needs
"""

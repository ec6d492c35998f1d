#!/bin/sh
# A BROWSER for tests: load the URL in Debian's headless Chromium, which follows the
# authorization server's redirect to our loopback receiver. No session bus (Chromium
# would start keyring and notification services on it), a throwaway profile, no
# background networking (this machine's network is closed), and a hard time cap.
profile="$(mktemp -d "${TMPDIR:-/tmp}/broxy-chromium-XXXXXX")"
DBUS_SESSION_BUS_ADDRESS=unix:path=/dev/null DISPLAY= timeout -k 3 "${BROXY_TEST_BROWSER_TIMEOUT:-20}" \
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --password-store=basic \
  --disable-background-networking --disable-component-update --disable-sync --disable-breakpad \
  --user-data-dir="$profile" --virtual-time-budget=5000 --dump-dom "$1" >/dev/null 2>&1
rm -rf "$profile"
exit 0

#!/usr/bin/env python3
"""A "browser" that signs in automatically, for tests and the conformance suite.

Usable as ``BROWSER`` for Python's `webbrowser` module, which runs
``$BROWSER <url>`` and waits for it to exit. It GETs the authorization URL
without following redirects; if the answer is a 3xx whose ``Location`` is an
http(s) URL on a loopback host, it GETs that URL too (and so on, at most a
few loopback hops, for an authorization server on loopback that redirects
within itself), and exits 0 once a loopback target answered without
redirecting. Anything else — no redirect, a redirect off loopback, a network
error or timeout — prints one line to stderr and exits 1.

Standard library only (it may run under another interpreter than the tests).
Proxies from the environment are not used: http.client connects directly.
The caller must not block the event loop that serves the redirect target
while this runs (call `webbrowser.open` from a worker thread).
"""

from __future__ import annotations

import http.client
import ipaddress
import ssl
import sys
from urllib.parse import urljoin, urlsplit

TIMEOUT = 10.0
MAX_LOOPBACK_HOPS = 5
REDIRECTS = {301, 302, 303, 307, 308}
USER_AGENT = "broxy-tray-test-browser/1"


class Refused(Exception):
    """A one-line reason to exit 1."""


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    h = host.strip().lower().rstrip(".")
    if h == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(h.strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def get(url: str) -> tuple[int, str | None]:
    """GET `url` without following redirects: (status, Location header)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise Refused(f"not an http(s) URL: {url}")
    try:
        port = parts.port
    except ValueError:
        raise Refused(f"invalid port in {url}") from None
    host = parts.hostname
    conn: http.client.HTTPConnection
    if scheme == "https":
        conn = http.client.HTTPSConnection(host, port, timeout=TIMEOUT, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("GET", target, headers={"User-Agent": USER_AGENT, "Accept": "text/html,*/*"})
        response = conn.getresponse()
        response.read(1 << 20)  # a page, not a download
        return response.status, response.getheader("Location")
    except (OSError, http.client.HTTPException) as exc:
        raise Refused(f"GET {scheme}://{parts.netloc}{parts.path} failed: {exc or type(exc).__name__}") from None
    finally:
        conn.close()


def run(url: str) -> None:
    status, location = get(url)
    if status not in REDIRECTS or not location:
        raise Refused(f"the authorization URL answered {status} without a redirect")
    for _ in range(MAX_LOOPBACK_HOPS):
        target = urljoin(url, location)
        parts = urlsplit(target)
        if parts.scheme.lower() not in ("http", "https") or not is_loopback(parts.hostname):
            raise Refused(f"refusing to follow a redirect off loopback: {parts.scheme}://{parts.netloc}{parts.path}")
        url = target
        status, location = get(url)
        if status not in REDIRECTS:
            if not 200 <= status < 300:
                # Delivered all the same: the receiver decides what this means for the flow.
                print(f"redirect target answered {status}", file=sys.stderr)
            return
        if not location:
            raise Refused(f"redirect {status} without a Location header")
    raise Refused(f"more than {MAX_LOOPBACK_HOPS} redirects on loopback")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("redirect_browser: usage: redirect_browser.py URL", file=sys.stderr)
        return 1
    try:
        run(argv[1])
    except Refused as exc:
        print(f"redirect_browser: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

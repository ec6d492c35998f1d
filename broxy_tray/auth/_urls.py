"""URL rules of OAuth discovery: canonical resource URIs, origins, loopback.

Kept apart from the flows because the same few rules decide several security
checks (PRM `resource`, issuer equality, "https unless loopback"), and each
must be applied identically everywhere.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Discovery is plain HTTP even for a WebSocket server: its metadata lives on
# the http(s) twin of the URL, and that twin is the resource's identity.
_WS_TO_HTTP = {"ws": "http", "wss": "https"}


class _Parts(NamedTuple):
    scheme: str
    host: str  # lower-case, IPv6 without brackets
    port: int  # effective port (default filled in)
    explicit_port: bool  # a non-default port was given
    path: str
    query: str
    fragment: str


def _split(url: str, *, map_ws: bool = True) -> _Parts:
    """Split an absolute http(s) (or ws(s)) URL; ValueError says what is wrong."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("empty URL")
    if any(c in url for c in "\r\n\t "):
        raise ValueError("URL contains whitespace")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if map_ws:
        scheme = _WS_TO_HTTP.get(scheme, scheme)
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("not an absolute http(s) URL")
    host = parts.hostname or ""
    if not host:
        raise ValueError("URL has no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("URL has an invalid port") from None
    default = _DEFAULT_PORTS[scheme]
    explicit = port is not None and port != default
    effective = port if port is not None else default
    return _Parts(scheme, host, effective, explicit, parts.path, parts.query, parts.fragment)


def _netloc(p: _Parts) -> str:
    host = f"[{p.host}]" if ":" in p.host else p.host
    return f"{host}:{p.port}" if p.explicit_port else host


def is_absolute_http_url(url: str) -> bool:
    """True for an absolute http or https URL with a host (ws/wss excluded)."""
    try:
        _split(url, map_ws=False)
    except ValueError:
        return False
    return True


def http_url(url: str) -> str:
    """Map ws→http and wss→https (other URLs unchanged): where discovery looks."""
    parts = urlsplit(url)
    mapped = _WS_TO_HTTP.get(parts.scheme.lower())
    return urlunsplit(parts._replace(scheme=mapped)) if mapped else url


def canonical_resource(url: str) -> str:
    """The canonical URI of an MCP server (RFC 8707, MCP authorization spec).

    Lower-case scheme and host, ws(s) mapped to http(s), no fragment, no
    userinfo (credentials must never travel to an authorization server),
    default port dropped, path kept as is except that a bare "/" is dropped,
    query kept. Raises ValueError for anything but an absolute http(s)/ws(s) URL.
    """
    p = _split(url)
    path = "" if p.path == "/" else p.path
    return urlunsplit((p.scheme, _netloc(p), path, p.query, ""))


def origin(url: str) -> str:
    """`scheme://host[:port]` of a URL (ws mapped to http), normalised."""
    p = _split(url)
    return f"{p.scheme}://{_netloc(p)}"


def same_origin(a: str, b: str) -> bool:
    """Same scheme, host and effective port; False when either is not a URL."""
    try:
        pa, pb = _split(a), _split(b)
    except ValueError:
        return False
    return (pa.scheme, pa.host, pa.port) == (pb.scheme, pb.host, pb.port)


def resource_matches(prm_resource: str, server_url: str) -> bool:
    """Whether a PRM `resource` identifies the server at `server_url`.

    Same origin, and the resource's path is a prefix of the server's path by
    whole segments ("/api" covers "/api/mcp", not "/apimcp"); a trailing
    slash is not significant here. The query is ignored; a resource with a
    fragment never matches (RFC 8707 forbids it).
    """
    try:
        pr, ps = _split(prm_resource), _split(server_url)
    except ValueError:
        return False
    if pr.fragment or (pr.scheme, pr.host, pr.port) != (ps.scheme, ps.host, ps.port):
        return False
    rp, sp = pr.path.rstrip("/"), ps.path.rstrip("/")
    return rp == "" or sp == rp or sp.startswith(rp + "/")


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 (also IPv4-mapped) and the name "localhost".

    Subdomains of .localhost are not included: nothing guarantees that the
    resolver in use maps them to loopback.
    """
    h = host.strip().lower()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if h.rstrip(".") == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def is_secure_url(url: str) -> bool:
    """https, or http on a loopback host (OAuth 2.1 §1.5, RFC 8252 §7.3)."""
    try:
        p = _split(url, map_ws=False)
    except ValueError:
        return False
    return p.scheme == "https" or is_loopback_host(p.host)


def issuer_key(url: str) -> str:
    """An issuer compared after RFC 3986 syntax normalisation only.

    Case of scheme and host, a default port, and an empty path versus "/"
    are the only differences ignored; everything else (a trailing slash on a
    non-empty path included) makes two issuers different, as RFC 8414 §3.3
    demands identical values.
    """
    try:
        p = _split(url, map_ws=False)
    except ValueError:
        return url
    path = "" if p.path == "/" else p.path
    return urlunsplit((p.scheme, _netloc(p), path, p.query, p.fragment))


def issuer_problem(url: str) -> str | None:
    """Why `url` cannot be an issuer identifier (RFC 8414 §2), or None."""
    try:
        p = _split(url, map_ws=False)
    except ValueError as exc:
        return str(exc)
    if urlsplit(url).query or p.fragment or "#" in url or "?" in url:
        return "an issuer must not have a query or fragment"
    if not is_secure_url(url):
        return "authorization server must use https (http is allowed only on loopback hosts)"
    return None


def well_known_url(url: str, suffix: str, *, strip_trailing_slash: bool) -> str:
    """Insert `/.well-known/<suffix>` between the host and the path (RFC 8414 §3.1, RFC 9728 §3.1).

    RFC 8414 removes any terminating "/" of an issuer's path first
    (`strip_trailing_slash=True`); RFC 9728 only drops the lone "/" after the
    host and keeps the query of a resource identifier.
    """
    p = _split(url)
    path = p.path.rstrip("/") if strip_trailing_slash else ("" if p.path == "/" else p.path)
    query = p.query if not strip_trailing_slash else ""
    return urlunsplit((p.scheme, _netloc(p), f"/.well-known/{suffix}{path}", query, ""))


def path_of(url: str) -> str:
    """The path of a URL with a lone "/" read as empty."""
    path = _split(url).path
    return "" if path == "/" else path

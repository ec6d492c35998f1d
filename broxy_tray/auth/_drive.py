"""Run a sans-IO auth flow over a real `httpx2.AsyncClient`.

The flows only describe requests; this is the one place that does I/O:
never following redirects (a flow must see a `3xx` to refuse it), reading
at most `max_body` + 1 bytes of any body (so an endless or huge answer
cannot exhaust memory; the flow sees it is too big), and bounding the whole
flow by one deadline.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

import anyio
import httpx2

from ._errors import AuthNetworkError
from ._metadata import MAX_METADATA_BYTES

T = TypeVar("T")

# Headers describing the wire body, which no longer apply to the decoded bytes we hand on.
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


async def _send(client: httpx2.AsyncClient, request: httpx2.Request, max_body: int) -> httpx2.Response:
    response = await client.send(request, stream=True, follow_redirects=False)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > max_body:
                break
    finally:
        await response.aclose()
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _WIRE_HEADERS]
    return httpx2.Response(
        response.status_code,
        headers=headers,
        content=b"".join(chunks)[: max_body + 1],
        request=request,
    )


def _safe(request: httpx2.Request) -> str:
    """The request URL without its query, which a later flow might fill with something private."""
    return str(request.url.copy_with(query=None, fragment=None))


async def drive(
    flow: Generator[httpx2.Request, httpx2.Response, T],
    client: httpx2.AsyncClient,
    *,
    timeout: float,
    max_body: int = MAX_METADATA_BYTES,
) -> T:
    """Answer each request `flow` yields with `client`; return the flow's result.

    The whole flow must finish within `timeout` seconds. Request failures
    (connection, TLS, protocol, body decoding) and the timeout raise
    AuthNetworkError naming the URL without its query; the flow's own errors
    propagate unchanged.
    """
    request: httpx2.Request | None = None
    try:
        with anyio.fail_after(timeout):
            request = next(flow)
            while True:
                response = await _send(client, request, max_body)
                request = flow.send(response)
    except StopIteration as stop:
        return stop.value
    except TimeoutError:
        where = f" from {_safe(request)}" if request is not None else ""
        raise AuthNetworkError(f"no answer{where} within {timeout:g} s") from None
    except httpx2.RequestError as exc:  # transport, decoding, protocol errors
        where = _safe(request) if request is not None else "the server"
        raise AuthNetworkError(f"request to {where} failed: {type(exc).__name__}") from None
    finally:
        flow.close()

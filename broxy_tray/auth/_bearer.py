"""`httpx2.Auth` that puts the server's bearer token on every request and reacts to challenges.

Handed to the SDK's HTTP transports (and our WebSocket handshake), so every
request the MCP session makes is authorized the same way. A `401` leads to a
refresh or a sign-in, a `403` with `error="insufficient_scope"` to a step-up,
each retried; at most `MAX_ATTEMPTS` authorizations per request, so a server
that keeps refusing cannot loop.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import httpx2

from ._challenge import bearer_challenge
from ._errors import AuthError
from ._signin import ServerAuth

MAX_ATTEMPTS = 3


class StepUpExhausted(AuthError):
    """The server still wanted more scope after `MAX_ATTEMPTS` authorizations."""


class BearerAuth(httpx2.Auth):
    """Bearer tokens from a `ServerAuth`."""

    requires_request_body = True  # the request is re-sent after a sign-in

    def __init__(self, server_auth: ServerAuth) -> None:
        self.server_auth = server_auth

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        sa = self.server_auth
        token = await sa.current_token()
        _authorize(request, token.access_token if token else None)
        response = yield request
        attempts = 0
        while response.status_code in (401, 403):
            challenge = bearer_challenge(response.headers)
            if response.status_code == 403 and (challenge is None or challenge.error != "insufficient_scope"):
                return  # a plain refusal: authorization would not change it
            if attempts >= MAX_ATTEMPTS:
                if response.status_code == 403:
                    sa.last_error = StepUpExhausted(
                        f"the server still requires more scope after {MAX_ATTEMPTS} authorizations"
                        + (f" (wants: {' '.join(challenge.scope)})" if challenge and challenge.scope else "")
                    )
                return
            attempts += 1  # (httpx2 reads and closes `response` itself before sending the retry)
            if response.status_code == 401:
                token = await sa.on_unauthorized(challenge, token)
            else:
                assert challenge is not None
                token = await sa.on_insufficient_scope(challenge, token)
            _authorize(request, token.access_token)
            response = yield request


def _authorize(request: httpx2.Request, access_token: str | None) -> None:
    if access_token:
        request.headers["Authorization"] = f"Bearer {access_token}"
    elif "Authorization" in request.headers:
        del request.headers["Authorization"]

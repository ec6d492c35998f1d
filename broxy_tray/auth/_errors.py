"""Exceptions of the OAuth flows.

Each message is one line a person can act on and names the URL involved, so
the tray, the log and `broxy-tray probe` can show it as is. Messages never
carry tokens, codes or secrets.
"""

from __future__ import annotations


class AuthError(Exception):
    """Base of every failure of the sign-in machinery."""


class DiscoveryError(AuthError):
    """Discovery could not produce usable, trustworthy metadata.

    `reason` is the stable, URL-free part (tests and callers may compare it);
    `url` is the document or server concerned, when there is one.
    """

    def __init__(self, reason: str, url: str | None = None) -> None:
        self.reason = reason
        self.url = url
        super().__init__(f"{reason} ({url})" if url else reason)


class MetadataFormatError(DiscoveryError):
    """A `200` answer that is not a usable metadata document at all.

    Discovery treats it like an absent document and moves to the next
    candidate URL (catch-all web routes answer `200` with HTML); it is raised
    only when no candidate yields a document. Security failures of a
    well-formed document are plain `DiscoveryError`s and stop the flow.
    """


class AuthNetworkError(AuthError):
    """A request of a flow failed in transport or timed out."""

"""Where tokens live between fetches: the interface a shared cache implements, and one in memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._token import AccessToken


@dataclass(frozen=True, slots=True)
class CacheKey:
    """What a cached token is for: one token per token URL, client and resource."""

    token_url: str
    client_id: str
    resource: str | None


@runtime_checkable
class TokenCache(Protocol):
    """A cache of tokens that several `MosaicAuth` instances, or processes, can share.

    Every `MosaicAuth` keeps the tokens it uses in memory; a `TokenCache` sits behind that. It is
    read by the one fetch or refresh under way for a resource, before asking the token
    endpoint; written with each new token; told to discard a token an API refused. A cache
    returns what it has, usable or not: the store decides. A cache that raises is logged and
    bypassed, so an outage never fails requests.
    """

    async def get(self, key: CacheKey) -> AccessToken | None:
        """Return the token cached under `key`, or None."""
        ...

    async def set(self, key: CacheKey, token: AccessToken) -> None:
        """Cache `token` under `key`, replacing any other."""
        ...

    async def discard(self, key: CacheKey, token: AccessToken) -> None:
        """Forget `token` if it is still the one cached under `key`; a newer one stays."""
        ...


class MemoryTokenCache:
    """A `TokenCache` in this process's memory, for sharing tokens between `MosaicAuth` instances.

    Give one instance to every `MosaicAuth` built with the same credentials (say, one per
    short-lived client) and they make one token request per resource between them.
    """

    def __init__(self) -> None:
        self._tokens: dict[CacheKey, AccessToken] = {}

    def __repr__(self) -> str:
        return f"MemoryTokenCache(size={len(self._tokens)})"

    async def get(self, key: CacheKey) -> AccessToken | None:
        """Return the token cached under `key`, or None."""
        return self._tokens.get(key)

    async def set(self, key: CacheKey, token: AccessToken) -> None:
        """Cache `token` under `key`, replacing any other."""
        self._tokens[key] = token

    async def discard(self, key: CacheKey, token: AccessToken) -> None:
        """Forget `token` if it is still the one cached under `key`; a newer one stays."""
        if self._tokens.get(key) == token:
            del self._tokens[key]

"""Bearer tokens a service signs for its own calls to another service, when no caller's token
is there to forward (the portal acting for a customer, the dunning scheduler fetching a
statement). Each is scoped to one tenant, narrow in scopes and short-lived; minted once and
reused until shortly before it expires."""

from __future__ import annotations

import time
from collections.abc import Iterable

from shared.auth import mint_token
from shared.settings import AuthSettings

_TTL_SECONDS = 300
_RENEW_BEFORE_SECONDS = 60


class ServiceTokens:
    def __init__(self, auth: AuthSettings, *, client_kind: str = "client") -> None:
        if auth.signing_key is None and not auth.algorithms[0].startswith("HS"):
            raise RuntimeError("service tokens need auth.signing_key (the service's credential)")
        self._auth = auth
        self._kind = client_kind
        self._cache: dict[tuple[str, str, frozenset[str]], tuple[str, float]] = {}

    def bearer(self, tenant_id: str, subject: str, scopes: Iterable[str]) -> str:
        """A token for ``tenant_id`` naming ``subject`` as the actor (e.g. ``portal:<link>``)."""
        key = (tenant_id, subject, frozenset(scopes))
        now = time.time()
        cached = self._cache.get(key)
        if cached is not None and cached[1] - _RENEW_BEFORE_SECONDS > now:
            return cached[0]
        token = mint_token(
            self._auth,
            subject=subject,
            tenant_id=tenant_id,
            scopes=key[2],
            ttl_seconds=_TTL_SECONDS,
            now=now,
            client_kind=self._kind,
        )
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (token, now + _TTL_SECONDS)
        return token

    def headers(self, tenant_id: str, subject: str, scopes: Iterable[str]) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.bearer(tenant_id, subject, scopes)}"}

"""Bearer JWT verification: issuer, audience, expiry, algorithm allow-list, tenant, scopes.

Every request carries a token whose tenant claim scopes all its reads and writes. Tokens are
verified against an explicit algorithm allow-list (never the token's own `alg` alone), so `none`
and HS/RS confusion are refused.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import jwt

from shared.errors import Forbidden, Unauthenticated
from shared.events.envelope import TENANT_PATTERN
from shared.settings import AuthSettings

_TENANT = re.compile(TENANT_PATTERN)
_REFUSED_ALGORITHMS = {"none", ""}


@dataclass(frozen=True)
class Principal:
    subject: str
    tenant_id: str
    scopes: frozenset[str]
    client_kind: str = "client"

    @property
    def actor(self) -> str:
        """How events record who did it."""
        return f"{self.client_kind}:{self.subject}"

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def require(self, *scopes: str) -> None:
        missing = [s for s in scopes if s not in self.scopes]
        if missing:
            raise Forbidden(f"missing scope: {' '.join(missing)}", {"required_scopes": missing})


def _scopes(claims: dict[str, object]) -> frozenset[str]:
    raw = claims.get("scope", claims.get("scp", ""))
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        return frozenset(raw)
    raise Unauthenticated("token scope claim is malformed")


def verify_token(token: str, settings: AuthSettings) -> Principal:
    algorithms = [a for a in settings.algorithms if a.lower() not in _REFUSED_ALGORITHMS]
    if not algorithms:
        raise RuntimeError("auth.algorithms allows no usable algorithm")
    try:
        header_alg = jwt.get_unverified_header(token).get("alg", "")
    except jwt.PyJWTError:
        raise Unauthenticated("malformed bearer token") from None
    if header_alg not in algorithms:
        raise Unauthenticated("token algorithm not allowed", {"alg": header_alg})
    keys = [settings.verification_key, *settings.previous_verification_keys]
    claims: dict[str, object] | None = None
    error: jwt.PyJWTError | None = None
    for key in keys:
        try:
            claims = jwt.decode(
                token,
                key.get_secret_value(),
                algorithms=algorithms,
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
            break
        except jwt.InvalidSignatureError as exc:
            error = exc  # maybe signed with a key being rotated: try the next one
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("token audience not accepted") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("token issuer not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"token lacks the {exc.claim} claim") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {type(exc).__name__}") from None
    if claims is None:
        raise Unauthenticated("token signature invalid") from error
    tenant = claims.get(settings.tenant_claim)
    if not isinstance(tenant, str) or not _TENANT.match(tenant):
        raise Unauthenticated("token has no valid tenant claim", {"claim": settings.tenant_claim})
    subject = str(claims["sub"])
    kind = claims.get("client_kind", "client")
    return Principal(
        subject=subject,
        tenant_id=tenant,
        scopes=_scopes(claims),
        client_kind=kind if kind in ("client", "user", "portal") else "client",
    )


def mint_token(
    settings: AuthSettings,
    *,
    subject: str,
    tenant_id: str,
    scopes: Iterable[str],
    ttl_seconds: int = 3600,
    algorithm: str | None = None,
    audience: str | None = None,
    issuer: str | None = None,
    now: float | None = None,
    client_kind: str = "client",
) -> str:
    """Dev/test tokens, and the short-lived ones a service signs for itself when it holds a
    signing key (shared/service_tokens.py). Callers' tokens come from the identity provider."""
    key = settings.signing_key or settings.verification_key
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": issuer or settings.issuer,
        "aud": audience or settings.audience,
        "sub": subject,
        settings.tenant_claim: tenant_id,
        "scope": " ".join(sorted(set(scopes))),
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
        "jti": str(uuid.uuid4()),
    }
    if client_kind != "client":
        claims["client_kind"] = client_kind
    return jwt.encode(claims, key.get_secret_value(), algorithm=algorithm or settings.algorithms[0])

"""JWT verification: every rejection case the API must answer 401/403 for."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from shared.auth import mint_token, verify_token
from shared.errors import Forbidden, Unauthenticated
from shared.settings import AuthSettings

SETTINGS = AuthSettings()


def token(**kw: object) -> str:
    args: dict[str, object] = {"subject": "erp", "tenant_id": "acme", "scopes": ["invoices:write"]}
    args.update(kw)
    return mint_token(SETTINGS, **args)  # type: ignore[arg-type]


def test_a_valid_token_yields_the_principal() -> None:
    p = verify_token(token(scopes=["invoices:write", "ops:replay"]), SETTINGS)
    assert (p.subject, p.tenant_id, p.actor) == ("erp", "acme", "client:erp")
    assert p.scopes == {"invoices:write", "ops:replay"}
    p.require("ops:replay")


def test_expired_tokens_are_refused_beyond_the_leeway() -> None:
    old = token(now=time.time() - 7200, ttl_seconds=3600)
    with pytest.raises(Unauthenticated, match="expired"):
        verify_token(old, SETTINGS)
    just_expired = token(now=time.time() - 3610, ttl_seconds=3600)  # 10 s late, 30 s leeway
    assert verify_token(just_expired, SETTINGS).tenant_id == "acme"


def test_wrong_audience_and_issuer_are_refused() -> None:
    with pytest.raises(Unauthenticated, match="audience"):
        verify_token(token(audience="someone-else"), SETTINGS)
    with pytest.raises(Unauthenticated, match="issuer"):
        verify_token(token(issuer="evil"), SETTINGS)


def test_missing_or_malformed_tenant_is_refused() -> None:
    no_tenant = jwt.encode(
        {
            "iss": SETTINGS.issuer,
            "aud": SETTINGS.audience,
            "sub": "x",
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
            "scope": "a",
        },
        SETTINGS.verification_key.get_secret_value(),
        algorithm="HS256",
    )
    with pytest.raises(Unauthenticated, match="tenant"):
        verify_token(no_tenant, SETTINGS)
    with pytest.raises(Unauthenticated, match="tenant"):
        verify_token(token(tenant_id="ACME; drop"), SETTINGS)


def test_missing_scope_is_forbidden_not_unauthenticated() -> None:
    p = verify_token(token(scopes=["invoices:read"]), SETTINGS)
    with pytest.raises(Forbidden) as info:
        p.require("invoices:write")
    assert info.value.status_code == 403
    assert info.value.details == {"required_scopes": ["invoices:write"]}


def test_tampered_and_foreign_signatures_are_refused() -> None:
    good = token()
    header, payload, signature = good.split(".")
    forged = ".".join(
        [header, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")]
    )
    with pytest.raises(Unauthenticated, match="signature"):
        verify_token(forged, SETTINGS)
    other = AuthSettings(verification_key=SecretStr("another-secret-of-sufficient-length-123"))
    with pytest.raises(Unauthenticated, match="signature"):
        verify_token(mint_token(other, subject="x", tenant_id="acme", scopes=[]), SETTINGS)


def test_alg_none_and_algorithms_outside_the_allow_list_are_refused() -> None:
    unsigned = jwt.encode(
        {
            "iss": SETTINGS.issuer,
            "aud": SETTINGS.audience,
            "sub": "x",
            "tenant_id": "acme",
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
        },
        key=None,  # type: ignore[arg-type]
        algorithm="none",
    )
    with pytest.raises(Unauthenticated, match="algorithm"):
        verify_token(unsigned, SETTINGS)
    hs512 = token(algorithm="HS512")
    with pytest.raises(Unauthenticated, match="algorithm"):
        verify_token(hs512, SETTINGS)


def test_rs256_with_public_key_and_no_hs_confusion() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    rs = AuthSettings(
        algorithms=["RS256"],
        verification_key=SecretStr(public_pem),
        signing_key=SecretStr(private_pem),
    )
    assert (
        verify_token(mint_token(rs, subject="s", tenant_id="t1", scopes=["a"]), rs).tenant_id
        == "t1"
    )
    # A token signed HS256 (e.g. with the public key as the secret) is refused by the allow-list.
    hs_token = mint_token(AuthSettings(), subject="s", tenant_id="t1", scopes=[])
    with pytest.raises(Unauthenticated, match="algorithm"):
        verify_token(hs_token, rs)


def test_rotation_accepts_the_previous_key_until_it_is_removed() -> None:
    old = AuthSettings(verification_key=SecretStr("old-secret-old-secret-old-secret-00"))
    new = AuthSettings(
        verification_key=SecretStr("new-secret-new-secret-new-secret-11"),
        previous_verification_keys=[old.verification_key],
    )
    issued_with_old = mint_token(old, subject="s", tenant_id="acme", scopes=[])
    assert verify_token(issued_with_old, new).subject == "s"
    after_rotation = AuthSettings(verification_key=new.verification_key)
    with pytest.raises(Unauthenticated):
        verify_token(issued_with_old, after_rotation)


def test_garbage_is_refused() -> None:
    for bad in ("", "abc", "a.b.c", "Bearer x"):
        with pytest.raises(Unauthenticated):
            verify_token(bad, SETTINGS)

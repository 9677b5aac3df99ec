"""Tokens and their claims never appear in gatehouse's output, whatever the outcome."""

from __future__ import annotations

import time

import httpx
import pytest

from auth_support import start_auth_gatehouse
from jwks_server import JWKSServer
from tokens import (
    SigningKey,
    alg_none,
    better_auth_payload,
    payload_of,
    random_id,
    split,
    tamper_payload,
    with_padding,
)


def unique_payload(origin: str, **claims) -> dict:
    uid = "leakcheck" + random_id(23)
    return better_auth_payload(origin, user_id=uid, email=f"{uid.lower()}@leak.example", name=f"Name {uid}", **claims)


@pytest.mark.parametrize("level,fmt", [("debug", "json"), ("trace", "text")])
def test_tokens_and_claims_never_appear_in_any_output(gatehouse_factory, upstream, level, fmt):
    key = SigningKey.generate("EdDSA")
    stranger = SigningKey.generate("EdDSA")
    server = JWKSServer(keys=[key.jwk()]).start()
    try:
        gh = start_auth_gatehouse(
            gatehouse_factory, upstream.url, server,
            GATEHOUSE_LOG_LEVEL=level, GATEHOUSE_LOG_FORMAT=fmt, GATEHOUSE_SHUTDOWN_DELAY="100ms",
            GATEHOUSE_TOKEN_COOKIE="gh_token", GATEHOUSE_TOKEN_QUERY_PARAM="access_token",
        )
        origin = server.origin
        now = time.time()
        good = key.token(better_auth_payload(origin, email="good-user@good.example", name="Good User"))
        rejected = {
            "tampered": tamper_payload(key.token(unique_payload(origin)), email="other@leak.example"),
            "expired": key.token(unique_payload(origin, now=now - 3600)),
            "future": key.token(unique_payload(origin, now=now + 3600)),
            "issuer": key.token(unique_payload(origin, iss="https://leak-issuer.example")),
            "audience": key.token(unique_payload(origin, aud="https://leak-audience.example")),
            "unknown-kid": stranger.token(unique_payload(origin)),
            "alg-none": alg_none(unique_payload(origin), kid=key.kid, signature="c2lnbmF0dXJlLWxlYWs"),
            "padding": with_padding(key.token(unique_payload(origin))),
            "oversized": key.token(unique_payload(origin, blob="y" * 20000)),
            "no-sub": key.token(unique_payload(origin, sub=None)),
        }
        with httpx.Client(base_url=gh.url, timeout=15) as c:
            for name, token in rejected.items():
                assert c.get(f"/echo/leak-{name}", headers={"Authorization": f"Bearer {token}"}).status_code == 401, name
                assert c.get(f"/echo/leak-{name}", headers={"Cookie": f"gh_token={token}"}).status_code == 401, name
                assert c.get(f"/echo/leak-{name}?access_token={token}").status_code == 401, name
            assert c.get("/echo/leak-good", headers={"Authorization": f"Bearer {good}"}).status_code == 200
            assert c.get("/echo/leak-good-cookie", headers={"Cookie": f"gh_token={good}"}).status_code == 200
            assert c.get(f"/echo/leak-good-query?x=1&access_token={good}").status_code == 200
            both = c.get(f"/echo/leak-twice?access_token={good}", headers={"Authorization": f"Bearer {good}"})
            assert both.status_code == 400
        gh.terminate_and_wait(timeout=30)  # flushes everything
    finally:
        server.stop()

    output = gh.output()
    assert "/echo/leak-expired" in output, "the requests were not logged at all"
    secrets: dict[str, str] = {}
    for name, token in [*rejected.items(), ("good", good)]:
        secrets[f"{name}: token"] = token
        parts = token.split(".")
        if len(parts) == 3:
            _, payload, signature = split(token)
            if payload:
                secrets[f"{name}: payload segment"] = payload
                secrets[f"{name}: payload prefix"] = payload[:40]
            if len(signature) >= 16:
                secrets[f"{name}: signature"] = signature
    # the rejected tokens' claims: emails, names and user ids (all contain "leak")
    secrets["a rejected token's email"] = "@leak.example"
    secrets["a rejected token's name or user id"] = "leakcheck"
    secrets["a rejected token's issuer or audience"] = "https://leak-"
    assert payload_of(good)["sub"]  # (the verified user's id may be logged)
    for what, secret in secrets.items():
        leaking = [line for line in output.splitlines() if secret in line]
        assert not leaking, f"{what} appears in gatehouse's output:\n" + "\n".join(l[:300] for l in leaking[:3])

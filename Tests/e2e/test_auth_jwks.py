"""The JWKS cache: readiness, rotation, unknown-kid storms, issuer outages, Cache-Control,
ETag, key removal — observed from the JWKS server's side (every fetch is recorded)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from auth_support import (
    assert_forwarded,
    assert_invalid_token,
    assert_keys_unavailable,
    bearer,
    fire,
    invalid_token_challenge,
    raw_get,
    readyz,
    start_auth_gatehouse,
    wait_readyz,
)
from conftest import wait_until
from jwks_server import JWKSServer
from tokens import SigningKey, better_auth_payload, json_bytes, payload_of, random_id

# Tests/Fixtures/, found relative to this file (see its README for their origin).
FIXTURES = json.loads((Path(__file__).resolve().parent.parent / "Fixtures" / "better-auth-1.4-examples.json").read_text())

# Short JWKS timings so refreshes happen within a test (seconds, not minutes).
FAST_REFRESH = {"GATEHOUSE_JWKS_TTL": "1s", "GATEHOUSE_JWKS_MIN_TTL": "1s"}


@pytest.fixture
def servers():
    """servers(keys, **attrs) -> a started JWKSServer; all stopped after the test."""
    started: list[JWKSServer] = []

    def make(keys: list[SigningKey], **attrs) -> JWKSServer:
        server = JWKSServer(keys=[k.jwk() for k in keys], **attrs).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def key_a() -> SigningKey:
    return SigningKey.generate("EdDSA")


@pytest.fixture(scope="module")
def key_b() -> SigningKey:
    return SigningKey.generate("EdDSA")


def get(gh, token: str, path: str = "/echo/jwks") -> httpx.Response:
    return httpx.get(f"{gh.url}{path}", headers=bearer(token), timeout=15)


def fresh_token(key: SigningKey, server: JWKSServer, **claims) -> str:
    """A token never sent before (so never in gatehouse's verified-token cache)."""
    return key.token(better_auth_payload(server.origin, jti=random_id(), **claims))


# ---------------------------------------------------------------------------------------
# readiness


def test_readyz_is_503_until_the_first_fetch_then_200_with_jwks_status(gatehouse_factory, upstream, servers, key_a, key_b):
    server = servers([key_a, key_b], delay=3.0)
    gh = start_auth_gatehouse(gatehouse_factory, upstream.url, server, wait_ready=False, GATEHOUSE_JWKS_FETCH_TIMEOUT="6s")
    status, body = readyz(gh)
    assert status == 503, body
    assert body["jwks"]["keys"] == 0, body
    assert body["jwks"]["age_seconds"] is None, body
    # a token request while no key was ever loaded: 503 + Retry-After
    token = fresh_token(key_a, server)
    assert_keys_unavailable(get(gh, token), token)
    status, body = wait_readyz(gh, lambda s, b: s == 200, timeout=15, what="/readyz 200 after the first fetch")
    jwks = body["jwks"]
    assert jwks["keys"] == 2, body
    assert isinstance(jwks["age_seconds"], (int, float)) and 0 <= jwks["age_seconds"] < 10, body
    assert jwks["last_error"] is None, body
    assert_forwarded(get(gh, fresh_token(key_a, server)))


def test_jwks_fetch_identifies_itself_and_asks_for_the_configured_path(gatehouse_factory, upstream, servers, key_a):
    server = servers([key_a])
    start_auth_gatehouse(gatehouse_factory, upstream.url, server)
    fetches = server.recorded(None)
    assert fetches and all(r.path == "/api/auth/jwks" and r.method == "GET" for r in fetches), [(r.method, r.path) for r in fetches]
    user_agent = fetches[0].header("user-agent") or ""
    assert user_agent.startswith("gatehouse/"), user_agent
    assert fetches[0].header("if-none-match") is None


@pytest.mark.parametrize("name", ["ex1_jwks", "ex2_jwks", "ex3_es256_jwks", "ex3_rs256_jwks", "ex3_ps256_jwks", "ex3_es512_jwks"])
def test_better_auth_fixture_jwks_documents_load(gatehouse_factory, upstream, servers, name):
    document = FIXTURES[name]
    token_name = {
        "ex1_jwks": "ex1_token", "ex2_jwks": "ex2_token_new", "ex3_es256_jwks": "ex3_es256_token",
        "ex3_rs256_jwks": "ex3_rs256_token", "ex3_ps256_jwks": "ex3_ps256_token",
    }.get(name)
    token = FIXTURES[token_name] if token_name else None
    server = servers([])
    server.body = json_bytes(document)
    env = {}
    if token:
        claims = payload_of(token)
        aud = claims["aud"] if isinstance(claims["aud"], str) else claims["aud"][-1]
        env = {"GATEHOUSE_ISSUER": claims["iss"], "GATEHOUSE_AUDIENCE": aud}
    gh = start_auth_gatehouse(gatehouse_factory, upstream.url, server, **env)
    status, body = readyz(gh)
    assert status == 200 and body["jwks"]["keys"] == len(document["keys"]), body
    if token:
        # signed in December 2025 with a 15 min lifetime: the signature verifies, the time does not
        assert_invalid_token(get(gh, token), "expired", token)


# ---------------------------------------------------------------------------------------
# rotation and unknown kids


def test_rotated_in_key_is_fetched_once_on_demand(gatehouse_factory, upstream, servers, key_a, key_b):
    server = servers([key_a])
    gh = start_auth_gatehouse(gatehouse_factory, upstream.url, server)  # default TTL: no background refresh now
    assert_forwarded(get(gh, fresh_token(key_a, server)))
    before = server.fetch_count()
    server.add_key(key_b.jwk())
    token = fresh_token(key_b, server)
    echo = assert_forwarded(get(gh, token))
    assert [v for k, v in echo["headers"] if k == "x-user-id"] == [payload_of(token)["sub"]]
    assert server.fetch_count() == before + 1, [r.time for r in server.recorded()]
    # the new key is now known: no more fetches
    assert_forwarded(get(gh, fresh_token(key_b, server)))
    assert_forwarded(get(gh, fresh_token(key_a, server)))
    time.sleep(0.3)
    assert server.fetch_count() == before + 1
    assert all((r.header("user-agent") or "").startswith("gatehouse/") for r in server.recorded())


def test_a_token_that_expires_while_its_new_key_is_fetched_is_refused(gatehouse_factory, upstream, servers, key_a, key_b):
    """exp is judged when the request would be let through, not when it arrived: a token
    that expires during the unknown-kid fetch its new key needs is refused as expired."""
    server = servers([key_a])
    gh = start_auth_gatehouse(
        gatehouse_factory, upstream.url, server, GATEHOUSE_CLOCK_SKEW="0s", GATEHOUSE_JWKS_FETCH_TIMEOUT="5s"
    )
    assert_forwarded(get(gh, fresh_token(key_a, server)))
    server.add_key(key_b.jwk())
    server.delay = 2.0  # the on-demand fetch takes 2 s
    issued = time.time()
    token = key_b.token(better_auth_payload(server.origin, now=issued, expires_in=1))
    started = time.monotonic()
    response = get(gh, token)
    assert time.monotonic() - started >= 1.9, "the request did wait for the fetch"
    assert_invalid_token(response, "expired", token)


def test_a_storm_of_unknown_kids_causes_at_most_one_extra_fetch(gatehouse_factory, upstream, servers, key_a):
    server = servers([key_a])
    gh = start_auth_gatehouse(gatehouse_factory, upstream.url, server, GATEHOUSE_JWKS_REFETCH_COOLDOWN="10s")
    attacker = SigningKey.generate("EdDSA")
    requests = []
    for i in range(1000):
        token = attacker.token(better_auth_payload(server.origin), kid=random_id())
        requests.append(raw_get(f"/echo/storm/{i}", {"Authorization": f"Bearer {token}"}))
    before = server.fetch_count()
    started = time.monotonic()
    results = fire(gh.port, requests, connections=16)
    elapsed = time.monotonic() - started
    extra = server.fetch_count() - before
    statuses = {}
    for status, info in results:
        statuses[status] = statuses.get(status, 0) + 1
    assert statuses == {401: 1000}, statuses
    wrong = [info for _, info in results if info["body"] != {"detail": "Invalid token: unknown key"}
             or info["www-authenticate"] != invalid_token_challenge("unknown key")]
    assert not wrong, f"{len(wrong)} unexpected answers, e.g. {wrong[:3]}"
    print(f"1000 unknown-kid requests in {elapsed:.2f}s caused {extra} JWKS fetch(es)")
    allowed = 1 if elapsed < 10 else 2
    assert extra <= allowed, f"{extra} JWKS fetches for 1000 unknown kids in {elapsed:.2f}s"
    # still serving good tokens
    assert_forwarded(get(gh, fresh_token(key_a, server)))


# ---------------------------------------------------------------------------------------
# issuer outages


def test_issuer_down_after_keys_loaded_keeps_verifying(gatehouse_factory, upstream, servers, key_a):
    server = servers([key_a])
    gh = start_auth_gatehouse(gatehouse_factory, upstream.url, server, **FAST_REFRESH)
    seen = fresh_token(key_a, server)
    assert_forwarded(get(gh, seen))
    server.stop()
    # a background refresh fails (connection refused) ...
    status, body = wait_readyz(gh, lambda s, b: b.get("jwks", {}).get("last_error"), timeout=10,
                               what="/readyz to report the failed refresh")
    # ... and nothing else changes
    assert status == 200, body
    assert body["jwks"]["keys"] == 1, body
    assert_forwarded(get(gh, seen))
    assert_forwarded(get(gh, fresh_token(key_a, server)))
    outsider = SigningKey.generate("EdDSA")
    unknown = outsider.token(better_auth_payload(server.origin))
    assert_invalid_token(get(gh, unknown), "unknown key", unknown)
    assert readyz(gh)[0] == 200
    # the issuer comes back: the error clears
    server.start()
    wait_readyz(gh, lambda s, b: s == 200 and b["jwks"]["last_error"] is None, timeout=20,
                what="/readyz last_error to clear after the issuer is back")


def test_keys_older_than_max_stale_give_503(gatehouse_factory, upstream, servers, key_a):
    server = servers([key_a])
    gh = start_auth_gatehouse(gatehouse_factory, upstream.url, server, GATEHOUSE_JWKS_MAX_STALE="2s", **FAST_REFRESH)
    assert_forwarded(get(gh, fresh_token(key_a, server)))
    server.stop()
    stopped = time.monotonic()

    def unavailable():
        token = fresh_token(key_a, server)
        response = get(gh, token)
        return (response, token) if response.status_code == 503 else None

    response, token = wait_until(unavailable, timeout=10, interval=0.2, what="503 once the keys are stale")
    assert time.monotonic() - stopped >= 1.0, "503 before the keys could be stale"
    assert_keys_unavailable(response, token)


def test_previously_accepted_token_is_refused_too_once_keys_are_stale(gatehouse_factory, upstream, servers, key_a):
    """The verified-token cache must not outlive GATEHOUSE_JWKS_MAX_STALE: a token verified
    with keys that may since have been revoked gets 503 like any other."""
    server = servers([key_a])
    gh = start_auth_gatehouse(gatehouse_factory, upstream.url, server, GATEHOUSE_JWKS_MAX_STALE="2s", **FAST_REFRESH)
    seen = fresh_token(key_a, server)
    assert_forwarded(get(gh, seen))
    assert_forwarded(get(gh, seen))
    server.stop()
    wait_until(lambda: get(gh, fresh_token(key_a, server)).status_code == 503, timeout=10, interval=0.2,
               what="503 once the keys are stale")
    assert_keys_unavailable(get(gh, seen), seen)


def test_cached_token_still_expires(gatehouse_factory, upstream, servers, key_a):
    server = servers([key_a])
    gh = start_auth_gatehouse(gatehouse_factory, upstream.url, server, GATEHOUSE_CLOCK_SKEW="1s")
    issued = time.time()
    token = key_a.token(better_auth_payload(server.origin, now=issued, expires_in=2))
    assert_forwarded(get(gh, token))
    assert_forwarded(get(gh, token))  # from the verified-token cache
    time.sleep(max(0.0, issued + 2 + 1 + 0.5 - time.time()))  # past exp + skew
    assert_invalid_token(get(gh, token), "expired", token)


def _break(server: JWKSServer, mode: str, key: SigningKey) -> None:
    if mode == "refused":
        server.stop()
    elif mode == "http-500":
        server.status = 500
    elif mode == "garbage":
        server.body = b"<html><body>Bad Gateway</body></html>"
    elif mode == "over-1MiB":
        # a valid JWKS, padded past 1 MiB
        server.body = json_bytes({"keys": [key.jwk()], "padding": "x" * (1 << 20)})
    elif mode == "slow":
        server.delay = 3.0


def _repair(server: JWKSServer) -> None:
    server.status, server.body, server.delay = None, None, 0.0
    if not server.running:
        server.start()


@pytest.mark.parametrize("mode", ["refused", "http-500", "garbage", "over-1MiB", "slow"])
def test_unusable_jwks_at_startup_means_503_until_it_is_fixed(gatehouse_factory, upstream, servers, key_a, mode):
    server = servers([key_a])
    _break(server, mode, key_a)
    gh = start_auth_gatehouse(gatehouse_factory, upstream.url, server, wait_ready=False, GATEHOUSE_JWKS_FETCH_TIMEOUT="500ms")
    status, body = wait_readyz(gh, lambda s, b: b.get("jwks", {}).get("last_error"), timeout=10,
                               what="/readyz to report the failed fetch")
    assert status == 503, body
    assert body["jwks"]["keys"] == 0, body
    token = fresh_token(key_a, server)
    assert_keys_unavailable(get(gh, token), token)
    if mode != "refused":
        assert server.fetch_count() >= 1
    _repair(server)
    wait_readyz(gh, lambda s, b: s == 200, timeout=20, what="/readyz 200 once the JWKS is fixed")
    assert_forwarded(get(gh, fresh_token(key_a, server)))


# ---------------------------------------------------------------------------------------
# freshness: Cache-Control, TTL bounds, ETag


@pytest.mark.parametrize(
    "cache_control,env,low,high",
    [
        ("max-age=4", {"GATEHOUSE_JWKS_TTL": "1s", "GATEHOUSE_JWKS_MIN_TTL": "1s"}, 3.0, 6.5),
        (None, {"GATEHOUSE_JWKS_TTL": "2s", "GATEHOUSE_JWKS_MIN_TTL": "1s"}, 1.4, 4.0),
        ("max-age=1", {"GATEHOUSE_JWKS_TTL": "3s", "GATEHOUSE_JWKS_MIN_TTL": "3s"}, 2.2, 5.5),
        ("max-age=3600", {"GATEHOUSE_JWKS_TTL": "1s", "GATEHOUSE_JWKS_MIN_TTL": "1s", "GATEHOUSE_JWKS_MAX_TTL": "2s"}, 1.4, 4.0),
    ],
    ids=["max-age-honoured", "default-ttl", "clamped-to-min", "clamped-to-max"],
)
def test_refresh_interval(gatehouse_factory, upstream, servers, key_a, cache_control, env, low, high):
    server = servers([key_a], cache_control=cache_control)
    start_auth_gatehouse(gatehouse_factory, upstream.url, server, **env)
    fetches = server.wait_for_fetches(2, timeout=high + 3)
    gap = fetches[1].time - fetches[0].time
    print(f"refresh gap {gap:.2f}s (expected {low}..{high}s)")
    assert low <= gap <= high, f"second fetch {gap:.2f}s after the first; expected {low}..{high}s"


def test_etag_revalidation_304_keeps_the_keys(gatehouse_factory, upstream, servers, key_a, key_b):
    server = servers([key_a], cache_control="max-age=1", etag='"v1"')
    gh = start_auth_gatehouse(gatehouse_factory, upstream.url, server, **FAST_REFRESH)
    fetches = server.wait_for_fetches(3, timeout=8)
    assert fetches[0].header("if-none-match") is None
    assert [f.header("if-none-match") for f in fetches[1:3]] == ['"v1"', '"v1"']
    assert [f.status for f in fetches[:3]] == [200, 304, 304]
    status, body = readyz(gh)
    assert status == 200 and body["jwks"]["keys"] == 1 and body["jwks"]["last_error"] is None, body
    assert_forwarded(get(gh, fresh_token(key_a, server)))
    # a real change (new ETag) replaces the keys
    server.configure(keys=[key_b.jwk()], etag='"v2"')
    changed_at = time.monotonic()
    replaced = wait_until(
        lambda: next((f for f in server.recorded() if f.time > changed_at and f.status == 200), None),
        timeout=5, what="a 200 fetch after the change",
    )
    old = fresh_token(key_a, server)
    wait_until(lambda: get(gh, fresh_token(key_a, server)).status_code == 401, timeout=3, what="key A to be dropped")
    assert_invalid_token(get(gh, old), "unknown key", old)
    assert_forwarded(get(gh, fresh_token(key_b, server)))
    # and the next revalidation carries the new ETag
    following = wait_until(
        lambda: next((f for f in server.recorded() if f.time > replaced.time), None),
        timeout=5, what="a fetch after the replacement",
    )
    assert following.header("if-none-match") == '"v2"', following


@pytest.mark.parametrize("cache_size", ["10000", "0"])
def test_removed_key_stops_verifying_after_the_next_refresh(gatehouse_factory, upstream, servers, key_a, key_b, cache_size):
    server = servers([key_a, key_b])
    gh = start_auth_gatehouse(gatehouse_factory, upstream.url, server, GATEHOUSE_TOKEN_CACHE_SIZE=cache_size, **FAST_REFRESH)
    token_b = fresh_token(key_b, server)
    assert_forwarded(get(gh, token_b))
    assert_forwarded(get(gh, token_b))  # now in the verified-token cache (when it is on)
    server.remove_key(key_b.kid)
    removed_at = time.monotonic()
    wait_until(lambda: any(f.time > removed_at + 0.05 and f.status == 200 for f in server.recorded()), timeout=5,
               what="a refresh after the removal")

    def rejected():
        response = get(gh, token_b)
        return response if response.status_code != 200 else None

    response = wait_until(rejected, timeout=3, interval=0.1, what="the removed key's token to be refused")
    assert_invalid_token(response, "unknown key", token_b)
    assert_forwarded(get(gh, fresh_token(key_a, server)))

"""/metrics on the admin port: parsed with prometheus_client's own parser, and the counters
move as requests are allowed and rejected for each reason."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from auth_support import bearer, start_auth_gatehouse
from jwks_server import JWKSServer
from tokens import SigningKey, better_auth_payload, tamper_payload


def scrape(gh) -> dict[tuple[str, tuple], float]:
    response = httpx.get(f"{gh.admin_url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_move_with_each_decision(gatehouse_factory, upstream):
    key = SigningKey.generate("EdDSA")
    stranger = SigningKey.generate("EdDSA")
    server = JWKSServer(keys=[key.jwk()]).start()
    try:
        gh = start_auth_gatehouse(gatehouse_factory, upstream.url, server)
        origin = server.origin
        good = key.token(better_auth_payload(origin))
        cases = {
            "allowed": bearer(good),
            "missing": {},
            "expired": bearer(key.token(better_auth_payload(origin, now=time.time() - 7200))),
            "bad_signature": bearer(tamper_payload(key.token(better_auth_payload(origin)), email="x@y.z")),
            "unknown_key": bearer(stranger.token(better_auth_payload(origin))),
            "issuer": bearer(key.token(better_auth_payload(origin, iss="https://elsewhere.example"))),
            "audience": bearer(key.token(better_auth_payload(origin, aud="https://elsewhere.example"))),
            "malformed": bearer("not-a-token"),
            # an ES256 header naming the EdDSA key: the algorithm does not fit the key
            "alg": bearer(key.token(better_auth_payload(origin), alg="ES256")),
            "not_yet_valid": bearer(key.token(better_auth_payload(origin, now=time.time() + 3600))),
            # two Authorization headers: ambiguous, refused as invalid_request
            "invalid_request": [("Authorization", f"Bearer {good}"), ("Authorization", f"Bearer {good}")],
        }
        before = scrape(gh)
        with httpx.Client(base_url=gh.url, timeout=10) as client:
            for reason, headers in cases.items():
                client.get("/echo/metrics", headers=headers)
            client.get("/echo/metrics", headers=bearer(good))  # second use: a cache hit
        after = scrape(gh)

        for reason in cases:
            result = "allowed" if reason == "allowed" else "rejected"
            delta = value(after, "gatehouse_auth_decisions_total", result=result, reason=reason) - value(
                before, "gatehouse_auth_decisions_total", result=result, reason=reason)
            assert delta == (2 if reason == "allowed" else 1), (reason, delta)

        def moved(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        assert moved("gatehouse_requests_total", route_class="protected", status="200") == 2
        assert moved("gatehouse_requests_total", route_class="protected", status="401") == len(cases) - 2
        assert moved("gatehouse_requests_total", route_class="protected", status="400") == 1
        assert moved("gatehouse_token_cache_hits_total") >= 1
        assert moved("gatehouse_request_duration_seconds_count") == len(cases) + 1
        assert moved("gatehouse_upstream_duration_seconds_count") == 2, "only forwarded requests reach upstream"
        assert value(after, "gatehouse_jwks_keys") == 1
        assert value(after, "gatehouse_jwks_fetches_total", result="success") >= 1
        assert 0 <= value(after, "gatehouse_jwks_age_seconds") < 60
        assert value(after, "gatehouse_requests_in_flight") == 0
        assert any(name == "gatehouse_build_info" and value(after, name, **dict(labels)) == 1 for name, labels in after)
    finally:
        server.stop()


def test_labels_are_bounded(gatehouse_factory, upstream):
    """Paths, user ids and kids never become label values."""
    key = SigningKey.generate("EdDSA")
    server = JWKSServer(keys=[key.jwk()]).start()
    try:
        gh = start_auth_gatehouse(gatehouse_factory, upstream.url, server)
        with httpx.Client(base_url=gh.url, timeout=10) as client:
            for i in range(20):
                token = key.token(better_auth_payload(server.origin, user_id=f"user{i:03d}uniqueid"))
                client.get(f"/echo/unique-path-{i}", headers=bearer(token))
        text = httpx.get(f"{gh.admin_url}/metrics", timeout=5).text
        assert "unique-path" not in text
        assert "uniqueid" not in text
        assert key.kid not in text
    finally:
        server.stop()

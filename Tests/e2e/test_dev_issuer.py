"""`gatehouse dev-issuer` and `gatehouse mint`: the development issuer of `make demo`.

Tokens minted by gatehouse are checked by an independent implementation (PyJWT over the
issuer's published JWKS) for every algorithm Better Auth offers, and then sent through a real
gatehouse in front of the real upstream. The key file is a standard private JWK Set: PyJWT signs
with it too, and gatehouse accepts those tokens.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time

import httpx
import jwt
import pytest

from auth_support import bearer
from conftest import GATEHOUSE_BIN, free_port, require_binary, run_gatehouse_command, wait_until

ALGORITHMS = ["EdDSA", "ES256", "ES512", "RS256", "PS256"]
# The members, in order, of each kind of key in Better Auth 1.4's JWKS (Tests/Fixtures/better-auth-1.4-examples.json).
PUBLIC_MEMBERS = {
    "OKP": ["alg", "crv", "x", "kty", "kid"],
    "EC": ["alg", "crv", "kty", "x", "y", "kid"],
    "RSA": ["alg", "kty", "n", "e", "kid"],
}
BETTER_AUTH_PAYLOAD = ["iat", "name", "email", "emailVerified", "image", "createdAt", "updatedAt", "id", "sub", "exp", "iss", "aud"]


class DevIssuer:
    def __init__(self, tmp_path):
        require_binary()
        self.key_file = tmp_path / "dev-key.json"
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "dev-issuer.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(GATEHOUSE_BIN), "dev-issuer", "--key-file", str(self.key_file), "--listen", f"127.0.0.1:{self.port}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )

        def up() -> bool:
            assert self.proc.poll() is None, f"dev-issuer exited: {self.log.read_text()}"
            try:
                return httpx.get(f"{self.origin}/api/auth/jwks", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=30, what="dev-issuer serving its JWKS")

    def jwks(self) -> dict:
        response = httpx.get(f"{self.origin}/api/auth/jwks", timeout=5)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        return response.json()

    def mint(self, *args: str) -> subprocess.CompletedProcess:
        return run_gatehouse_command(["mint", "--key-file", str(self.key_file), "--issuer", self.origin, *args], env=dict(os.environ))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def issuer(tmp_path_factory):
    server = DevIssuer(tmp_path_factory.mktemp("dev-issuer"))
    yield server
    server.stop()


def test_new_key_file_is_private_and_jwks_has_better_auths_shape(issuer):
    mode = stat.S_IMODE(issuer.key_file.stat().st_mode)
    assert mode == 0o600, oct(mode)
    keys = issuer.jwks()["keys"]
    key = keys[0]  # a new file starts with one Ed25519 key (Better Auth's default)
    assert len({k["kid"] for k in keys}) == len(keys)
    assert list(key) == PUBLIC_MEMBERS["OKP"]
    assert key["alg"] == "EdDSA" and key["crv"] == "Ed25519"
    assert len(key["kid"]) == 32 and key["kid"].isalnum()
    assert "d" not in key and "use" not in key


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_minted_token_verifies_with_pyjwt_and_passes_gatehouse(issuer, alg, gatehouse_factory, upstream):
    result = issuer.mint("--alg", alg, "--sub", f"user-{alg}", "--email", f"{alg.lower()}@example.com", "--ttl", "10m")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()

    # Better Auth's exact shape, checked by PyJWT against the issuer's published JWKS.
    header = jwt.get_unverified_header(token)
    assert list(header) == ["alg", "kid"] and header["alg"] == alg
    published = {k["kid"]: k for k in issuer.jwks()["keys"]}
    assert header["kid"] in published, "the kid of a minted token is served by the dev issuer"
    jwk = published[header["kid"]]
    assert jwk["alg"] == alg and list(jwk) == PUBLIC_MEMBERS[jwk["kty"]]
    claims = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=[alg], audience=issuer.origin, issuer=issuer.origin)
    assert list(claims) == BETTER_AUTH_PAYLOAD
    assert claims["sub"] == claims["id"] == f"user-{alg}"
    assert claims["exp"] - claims["iat"] == 600
    if alg.startswith("ES"):
        signature = jwt.utils.base64url_decode(token.split(".")[2])
        assert len(signature) == (64 if alg == "ES256" else 132), "JWS ECDSA signatures are raw r‖s"

    # A real gatehouse in front of the real upstream accepts it and forwards the identity.
    gh = gatehouse_factory(upstream.url, BETTER_AUTH_URL=issuer.origin)
    response = httpx.get(f"{gh.url}/echo", headers=bearer(token), timeout=10)
    assert response.status_code == 200, response.text
    forwarded = dict(response.json()["headers"])
    assert forwarded["x-user-id"] == f"user-{alg}"
    assert forwarded["x-user-email"] == f"{alg.lower()}@example.com"


def test_key_added_while_gatehouse_runs_is_fetched_on_first_sight(gatehouse_factory, upstream, tmp_path):
    """A new kid appears unannounced (as after a Better Auth key rotation): mint adds the key
    to the file, the running issuer serves it at once, and gatehouse fetches the JWKS again on
    first sight of the unknown kid."""
    key_file = tmp_path / "rotating-key.json"
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    log = tmp_path / "rotating-issuer.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(GATEHOUSE_BIN), "dev-issuer", "--key-file", str(key_file), "--listen", f"127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        wait_until(lambda: _serves(origin), timeout=30, what="dev-issuer up")
        gh = gatehouse_factory(upstream.url, BETTER_AUTH_URL=origin)  # has fetched the JWKS: one key
        result = run_gatehouse_command(
            ["mint", "--key-file", str(key_file), "--issuer", origin, "--alg", "ES256"], env=dict(os.environ))
        assert result.returncode == 0, result.stderr
        assert "added a ES256 key" in result.stderr
        token = result.stdout.strip()
        kid = jwt.get_unverified_header(token)["kid"]
        assert kid in {k["kid"] for k in httpx.get(f"{origin}/api/auth/jwks", timeout=5).json()["keys"]}
        response = httpx.get(f"{gh.url}/echo", headers=bearer(token), timeout=10)
        assert response.status_code == 200, response.text
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600, "rewritten with the same private mode"
        assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == [], "no temporary key file left"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def _serves(origin: str) -> bool:
    try:
        return httpx.get(f"{origin}/api/auth/jwks", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_key_file_is_a_standard_private_jwk_set(issuer, gatehouse_factory, upstream):
    """PyJWT can sign with every key of the file; gatehouse accepts what it signs."""
    for alg in ALGORITHMS:  # every algorithm has a key by now, or gets one here
        assert issuer.mint("--alg", alg).returncode == 0
    document = json.loads(issuer.key_file.read_text())
    assert {k["alg"] for k in document["keys"]} >= set(ALGORITHMS)
    gh = gatehouse_factory(upstream.url, BETTER_AUTH_URL=issuer.origin)
    now = int(time.time())
    for private in document["keys"]:
        assert "d" in private
        claims = {"sub": f"pyjwt-{private['alg']}", "iat": now, "exp": now + 300, "iss": issuer.origin, "aud": issuer.origin}
        token = jwt.encode(claims, jwt.PyJWK(private).key, algorithm=private["alg"], headers={"kid": private["kid"]})
        response = httpx.get(f"{gh.url}/echo", headers=bearer(token), timeout=10)
        assert response.status_code == 200, (private["alg"], response.text)
        assert dict(response.json()["headers"])["x-user-id"] == f"pyjwt-{private['alg']}"


def test_mint_refuses_an_algorithm_better_auth_does_not_offer(issuer):
    for alg in ["HS256", "none", "RS512"]:
        result = issuer.mint("--alg", alg)
        assert result.returncode == 2
        assert result.stdout == ""
        assert f'unsupported --alg "{alg}"' in result.stderr


def _b64(data: bytes) -> str:
    return jwt.utils.base64url_encode(data).decode()


def _ec_jwk(private, kid: str) -> dict:
    numbers = private.private_numbers()
    return {"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": kid,
            "x": _b64(numbers.public_numbers.x.to_bytes(32, "big")), "y": _b64(numbers.public_numbers.y.to_bytes(32, "big")),
            "d": _b64(numbers.private_value.to_bytes(32, "big"))}


def _rsa_jwk(private, kid: str) -> dict:
    n = private.private_numbers()
    def big(value: int) -> str:
        return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))
    return {"kty": "RSA", "alg": "RS256", "kid": kid, "n": big(n.public_numbers.n), "e": big(n.public_numbers.e),
            "d": big(n.d), "p": big(n.p), "q": big(n.q), "dp": big(n.dmp1), "dq": big(n.dmq1), "qi": big(n.iqmp)}


def _bad_key_files() -> dict[str, dict]:
    """Key files that must be refused, each with a problem only a real key import finds."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    a, b = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ec_mismatch = _ec_jwk(a, "ec-mismatch")
    ec_mismatch["d"] = _ec_jwk(b, "other")["d"]  # a valid scalar, but of another key
    r1, r2 = rsa.generate_private_key(65537, 2048), rsa.generate_private_key(65537, 2048)
    rsa_mismatch = _rsa_jwk(r1, "rsa-mismatch")
    rsa_mismatch["d"] = _rsa_jwk(r2, "other")["d"]
    small = _rsa_jwk(rsa.generate_private_key(65537, 1024), "rsa-1024")  # gatehouse refuses < 2048 bits
    return {
        "short coordinates": {"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "k", "x": "AA", "y": "AA", "d": "AA"}]},
        "EC d of another key": {"keys": [ec_mismatch]},
        "RSA d of another key": {"keys": [rsa_mismatch]},
        "RSA key of 1024 bits": {"keys": [small]},
    }


def test_malformed_key_file_is_refused_with_its_name(tmp_path):
    for problem, document in _bad_key_files().items():
        bad = tmp_path / "bad-key.json"
        bad.write_text(json.dumps(document))
        result = run_gatehouse_command(["mint", "--key-file", str(bad)], env=dict(os.environ))
        assert result.returncode == 1, problem
        assert result.stdout == "", problem
        assert str(bad) in result.stderr and "key 1 is not a private JWK" in result.stderr, (problem, result.stderr)
        assert json.loads(bad.read_text()) == document, f"{problem}: the file is left as it was"


def test_repeated_kid_in_key_file_is_refused(tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec

    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps({"keys": [_ec_jwk(ec.generate_private_key(ec.SECP256R1()), "same"),
                                          _ec_jwk(ec.generate_private_key(ec.SECP256R1()), "same")]}))
    result = run_gatehouse_command(["mint", "--key-file", str(twice), "--alg", "ES256"], env=dict(os.environ))
    assert result.returncode == 1
    assert "key 2 repeats the kid" in result.stderr


def test_concurrent_mints_keep_every_key(tmp_path):
    """Two `mint --alg` of new algorithms at once: both keys end up in the file."""
    key_file = tmp_path / "shared-key.json"
    assert run_gatehouse_command(["mint", "--key-file", str(key_file)], env=dict(os.environ)).returncode == 0
    procs = [
        subprocess.Popen([str(GATEHOUSE_BIN), "mint", "--key-file", str(key_file), "--alg", alg],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for alg in ["RS256", "PS256", "ES256", "ES512"]
    ]
    kids = set()
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        kids.add(jwt.get_unverified_header(out.strip())["kid"])
    in_file = {k["kid"] for k in json.loads(key_file.read_text())["keys"]}
    assert kids <= in_file, f"keys lost: {kids - in_file}"
    assert len(in_file) == 5


def test_dev_issuer_listens_on_loopback_only(tmp_path):
    result = run_gatehouse_command(
        ["dev-issuer", "--key-file", str(tmp_path / "k.json"), "--listen", "0.0.0.0:3999"], env=dict(os.environ), timeout=10)
    assert result.returncode == 2
    assert "loopback" in result.stderr
    assert not (tmp_path / "k.json").exists()


def test_dev_issuer_paths_key_changes_and_unreadable_file(tmp_path):
    """Only /api/auth/jwks (with or without a query) is served; a key that mint adds is served
    without a restart; a key file that stops being readable costs a 500 until it is back."""
    server = DevIssuer(tmp_path)
    try:
        first = server.jwks()
        with_query = httpx.get(f"{server.origin}/api/auth/jwks?cache=no", timeout=5)
        assert with_query.status_code == 200 and with_query.json() == first
        for path in ["/", "/api/auth/jwks/", "/api/auth/jwks.json", "/.well-known/jwks.json"]:
            response = httpx.get(f"{server.origin}{path}", timeout=5)
            assert response.status_code == 404, path
            assert response.headers["content-type"] == "application/json"
            assert response.content == b'{"detail":"Not Found"}'

        result = server.mint("--alg", "ES256")
        assert result.returncode == 0, result.stderr
        kid = jwt.get_unverified_header(result.stdout.strip())["kid"]
        kids = [k["kid"] for k in server.jwks()["keys"]]
        assert kids == [k["kid"] for k in first["keys"]] + [kid], "the new key is served, the old ones stay"

        saved = server.key_file.read_bytes()
        server.key_file.write_text("not json")
        response = httpx.get(f"{server.origin}/api/auth/jwks", timeout=5)
        assert response.status_code == 500
        assert response.content == b'{"detail":"The key file cannot be read"}'
        server.key_file.write_bytes(saved)
        assert [k["kid"] for k in server.jwks()["keys"]] == kids
    finally:
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=10) == 0
    log = server.log.read_text()
    assert "dev issuer serving JWKS" in log and f"http://127.0.0.1:{server.port}/api/auth/jwks" in log
    # At start and after mint (a new inode); the restored file is read again too unless its
    # mtime lands in the same coarse clock tick as mint's, where the cached snapshot is the same.
    assert log.count("dev issuer keys loaded") >= 2, log
    assert "dev issuer cannot serve its keys" in log


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_dev_issuer_exits_0_on_a_signal(tmp_path, sig):
    server = DevIssuer(tmp_path)
    with httpx.Client(timeout=5) as kept_alive:  # an open connection does not hold the exit up
        assert kept_alive.get(f"{server.origin}/api/auth/jwks").status_code == 200
        server.proc.send_signal(sig)
        assert server.proc.wait(timeout=10) == 0, server.log.read_text()


def test_single_private_jwk_file_of_earlier_versions_still_signs(tmp_path):
    """Key files written before ES/RS support hold one Ed25519 private JWK, not a set."""
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives import serialization

    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    b64 = lambda data: jwt.utils.base64url_encode(data).decode()  # noqa: E731
    legacy = tmp_path / "legacy-key.json"
    legacy.write_text(json.dumps({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "legacykid", "x": b64(public), "d": b64(raw)}))
    result = run_gatehouse_command(
        ["mint", "--key-file", str(legacy), "--issuer", "http://127.0.0.1:3000", "--sub", "old"], env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": "legacykid"}
    claims = jwt.decode(token, private.public_key(), algorithms=["EdDSA"], audience="http://127.0.0.1:3000")
    assert claims["sub"] == "old"


def test_minted_session_has_better_auths_format_and_passes_gatehouse(issuer, gatehouse_factory, upstream):
    """`mint --session` prints a credential of Better Auth's exact format; the dev issuer answers
    get-session for it (checked here with Python's own HMAC over the token, using the secret
    from the sessions file) and gatehouse accepts it as the cookie and as a bearer."""
    import base64
    import hashlib
    import hmac
    from urllib.parse import unquote

    result = issuer.mint("--session", "--sub", "session-user", "--email", "s@example.com", "--ttl", "1h")
    assert result.returncode == 0, result.stderr
    value = result.stdout.strip()
    token, _, signature = unquote(value).partition(".")
    assert len(token) == 32 and token.isalnum()
    assert len(signature) == 44 and signature.endswith("=")
    store = json.loads((issuer.key_file.parent / (issuer.key_file.name + ".sessions")).read_text())
    secret = base64.urlsafe_b64decode(store["secret"] + "=" * (-len(store["secret"]) % 4))
    assert base64.b64decode(signature) == hmac.new(secret, token.encode(), hashlib.sha256).digest()
    mode = stat.S_IMODE((issuer.key_file.parent / (issuer.key_file.name + ".sessions")).stat().st_mode)
    assert mode == 0o600, oct(mode)

    url = f"{issuer.origin}/api/auth/get-session"
    answer = httpx.get(url, headers={"Cookie": f"better-auth.session_token={value}"}, timeout=5).json()
    assert answer["session"]["token"] == token and answer["user"]["id"] == "session-user"
    assert list(answer) == ["session", "user"]
    assert httpx.get(url, headers={"Authorization": f"Bearer {value}"}, timeout=5).json()["user"]["email"] == "s@example.com"
    # A tampered signature, an unknown token, or no credential: null, as Better Auth answers.
    forged = token + "." + ("A" if signature[0] != "A" else "B") + value.split(".", 1)[1][1:]
    for headers in ({"Cookie": f"better-auth.session_token={forged}"}, {"Authorization": "Bearer " + "x" * 32}, {}):
        response = httpx.get(url, headers=headers, timeout=5)
        assert response.status_code == 200 and response.json() is None, headers

    gh = gatehouse_factory(upstream.url, BETTER_AUTH_URL=issuer.origin, GATEHOUSE_SESSIONS="both")
    for headers in ({"Cookie": f"better-auth.session_token={value}"}, {"Authorization": f"Bearer {value}"}):
        response = httpx.get(f"{gh.url}/echo", headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        forwarded = dict(response.json()["headers"])
        assert forwarded["x-user-id"] == "session-user" and forwarded["x-auth-method"] == "session"
    refused = httpx.get(f"{gh.url}/echo", headers={"Cookie": f"better-auth.session_token={forged}"}, timeout=10)
    assert refused.status_code == 401 and "session not found" in refused.headers["www-authenticate"]

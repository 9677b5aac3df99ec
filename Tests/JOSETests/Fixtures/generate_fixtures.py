#!/usr/bin/env python3
"""Generates tokens.json: JWTs for JOSETests, signed by an implementation independent of ours
(Python `cryptography`, JWS assembled by hand per RFC 7515 §7.1).

Run:  python3 generate_fixtures.py > tokens.json
Keys are random on every run; the committed tokens.json is the one the tests use.
"""
import base64, hashlib, hmac, json, uuid, secrets, string

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

BASE = 1765180800            # Better Auth fixture iat (2025-12-08T08:00:00Z)
NOW = BASE + 60              # the tests' fixed clock
ISS = "https://auth.example.com"
AUD = "https://api.example.com"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def i2b(n: int, size: int) -> bytes:
    return n.to_bytes(size, "big")


def kid32() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))


class Key:
    def __init__(self, alg, private, jwk):
        self.alg, self.private, self.jwk = alg, private, jwk

    def sign(self, data: bytes, alg=None) -> bytes:
        alg = alg or self.alg
        k = self.private
        if alg == "EdDSA":
            return k.sign(data)
        if alg in ("ES256", "ES512"):
            size = 32 if alg == "ES256" else 66
            h = hashes.SHA256() if alg == "ES256" else hashes.SHA512()
            r, s = utils.decode_dss_signature(k.sign(data, ec.ECDSA(h)))
            return i2b(r, size) + i2b(s, size)
        if alg == "RS256":
            return k.sign(data, padding.PKCS1v15(), hashes.SHA256())
        if alg == "PS256":
            return k.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
        raise ValueError(alg)


def ed_key(kid):
    k = ed25519.Ed25519PrivateKey.generate()
    x = k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return Key("EdDSA", k, {"alg": "EdDSA", "crv": "Ed25519", "x": b64(x), "kty": "OKP", "kid": kid})


def ec_key(kid, curve, alg, size):
    k = ec.generate_private_key(curve)
    n = k.public_key().public_numbers()
    return Key(alg, k, {"alg": alg, "crv": "P-256" if size == 32 else "P-521", "kty": "EC",
                        "x": b64(i2b(n.x, size)), "y": b64(i2b(n.y, size)), "kid": kid})


def rsa_key(kid, bits, alg=None):
    k = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    n = k.public_key().public_numbers()
    jwk = {"kty": "RSA", "n": b64(i2b(n.n, (bits + 7) // 8)), "e": b64(i2b(n.e, 3)), "kid": kid}
    if alg:
        jwk["alg"] = alg
    return Key(alg or "RS256", k, jwk)


ed_a = ed_key(kid32())
ed_b = ed_key(str(uuid.uuid4()))
es256 = ec_key(kid32(), ec.SECP256R1(), "ES256", 32)
es512 = ec_key(kid32(), ec.SECP521R1(), "ES512", 66)
rsa_any = rsa_key("1700000000", 2048)          # no "alg": accepts RS256 and PS256; numeric kid
rsa_small = rsa_key(kid32(), 1024, "RS256")


def user_claims(**over):
    claims = {
        "iat": BASE, "name": "Ada Lovelace", "email": "ada@example.com", "emailVerified": True,
        "image": None, "createdAt": "2025-11-30T12:34:56.789Z", "updatedAt": "2025-12-07T09:00:00.000Z",
        "id": "M0JbW4n1bXq7cR2sT9vK3yZ8aL5dF6gH", "sub": "M0JbW4n1bXq7cR2sT9vK3yZ8aL5dF6gH",
        "exp": BASE + 900, "iss": ISS, "aud": AUD,
    }
    for k, v in over.items():
        if v is DROP:
            claims.pop(k, None)
        else:
            claims[k] = v
    return claims


DROP = object()


def jws(key, claims=None, header=None, alg=None, raw_payload=None, signer=None):
    alg = alg or key.alg
    header = header if header is not None else {"alg": alg, "kid": key.jwk["kid"]}
    h = b64(json.dumps(header, separators=(",", ":")).encode())
    body = raw_payload if raw_payload is not None else json.dumps(claims if claims is not None else user_claims(),
                                                                  separators=(",", ":")).encode()
    p = b64(body)
    signing_input = f"{h}.{p}".encode()
    sig = signer(signing_input) if signer else key.sign(signing_input, alg)
    return f"{h}.{p}.{b64(sig)}"


cases = []


def case(name, token, expect, jwks="main"):
    cases.append({"name": name, "token": token, "expect": expect, "jwks": jwks})


A = ed_a
case("eddsa valid", jws(A), "ok")
case("ES256 valid", jws(es256), "ok")
case("ES512 valid", jws(es512), "ok")
case("RS256 valid with an RSA key without alg", jws(rsa_any, alg="RS256"), "ok")
case("PS256 valid with the same RSA key (never pinned)", jws(rsa_any, alg="PS256"), "ok")
case("RS256 again after PS256 (never pinned)", jws(rsa_any, alg="RS256", claims=user_claims(role="x")), "ok")
case("UUID kid of the second EdDSA key", jws(ed_b), "ok")
case("large token with custom fields", jws(A, user_claims(preferences={"bio": "x" * 6000, "tags": ["a"] * 50})), "ok")
case("aud array containing our audience", jws(A, user_claims(aud=["https://other.example.com", AUD])), "ok")
case("jku header is ignored", jws(A, header={"alg": "EdDSA", "kid": A.jwk["kid"], "jku": "https://evil.example/jwks.json"}), "ok")
case("x5u, jwk and x5c headers are ignored",
     jws(A, header={"alg": "EdDSA", "kid": A.jwk["kid"], "x5u": "https://evil.example/c.pem",
                    "jwk": {"kty": "OKP", "crv": "Ed25519", "x": A.jwk["x"]}, "x5c": ["AAAA"]}), "ok")
case("exp as a float", jws(A, user_claims(exp=BASE + 900.5)), "ok")
case("exp just inside the clock skew", jws(A, user_claims(exp=NOW - 29)), "ok")
case("missing kid with a single-key set", jws(A, header={"alg": "EdDSA"}), "ok", jwks="single")
case("unicode and escapes in claims", jws(A, raw_payload=json.dumps(user_claims(name="Ada \u00e9\u00e8 \U0001F600 \"q\""), ensure_ascii=True).encode()), "ok")

case("alg none", jws(A, header={"alg": "none", "kid": A.jwk["kid"]}, signer=lambda _: b"not-a-signature"), "alg")
case("alg none with empty signature", jws(A, header={"alg": "none", "kid": A.jwk["kid"]}, signer=lambda _: b""), "malformed")
case("alg NONE", jws(A, header={"alg": "NONE", "kid": A.jwk["kid"]}, signer=lambda _: b"x" * 64), "alg")
x_bytes = base64.urlsafe_b64decode(A.jwk["x"] + "=")
case("HS256 keyed with the public key", jws(A, alg="HS256", signer=lambda m: hmac.new(x_bytes, m, hashlib.sha256).digest()), "alg")
case("lowercase eddsa alg", jws(A, header={"alg": "eddsa", "kid": A.jwk["kid"]}), "alg")
case("missing alg", jws(A, header={"kid": A.jwk["kid"]}), "alg")
case("ES256 token naming the EdDSA key", jws(es256, header={"alg": "ES256", "kid": A.jwk["kid"]}), "alg")
case("EdDSA token naming the ES256 key", jws(A, header={"alg": "EdDSA", "kid": es256.jwk["kid"]}), "alg")
case("ES256 header on the ES512 key", jws(es512, header={"alg": "ES256", "kid": es512.jwk["kid"]}, signer=lambda m: es256.sign(m)), "alg")
case("kid swap between two EdDSA keys", jws(A, header={"alg": "EdDSA", "kid": ed_b.jwk["kid"]}), "bad_signature")
case("unknown kid", jws(A, header={"alg": "EdDSA", "kid": "unknownunknownunknownunknown1234"}), "unknown_key")
case("missing kid with several keys", jws(A, header={"alg": "EdDSA"}), "unknown_key")
case("expired", jws(A, user_claims(iat=BASE - 3600, exp=BASE - 2700)), "expired")
case("expired exactly at exp + skew", jws(A, user_claims(exp=NOW - 30)), "expired")
case("nbf in the future", jws(A, user_claims(nbf=BASE + 3600)), "not_yet_valid")
case("iat in the future", jws(A, user_claims(iat=BASE + 3600, exp=BASE + 4500)), "not_yet_valid")
case("wrong iss", jws(A, user_claims(iss="https://evil.example.com")), "issuer")
case("missing iss", jws(A, user_claims(iss=DROP)), "issuer")
case("wrong aud", jws(A, user_claims(aud="https://other.example.com")), "audience")
case("aud array without our audience", jws(A, user_claims(aud=["https://a.example.com", "https://b.example.com"])), "audience")
case("missing aud", jws(A, user_claims(aud=DROP)), "audience")
case("missing sub", jws(A, user_claims(sub=DROP)), "missing_claim")
case("empty sub", jws(A, user_claims(sub="")), "missing_claim")
case("missing exp", jws(A, user_claims(exp=DROP)), "missing_claim")
case("exp as a string", jws(A, user_claims(exp=str(BASE + 900))), "malformed")
case("crit header", jws(A, header={"alg": "EdDSA", "kid": A.jwk["kid"], "crit": ["exp"], "exp": BASE}), "malformed")
case("duplicate sub in the payload",
     jws(A, raw_payload=json.dumps(user_claims()).encode()[:-1] + b',"sub":"admin"}'), "malformed")
case("payload is not an object", jws(A, raw_payload=b'["not","an","object"]'), "malformed")
case("ES512 signature with r|s of the wrong size",
     jws(es512, signer=lambda m: es512.sign(m)[:-2]), "bad_signature")

doc = {
    "generator": "generate_fixtures.py (Python cryptography)",
    "now": NOW,
    "issuer": ISS,
    "audience": AUD,
    "jwks": {
        "main": {"keys": [ed_a.jwk, ed_b.jwk, es256.jwk, es512.jwk, rsa_any.jwk]},
        "single": {"keys": [ed_a.jwk]},
    },
    "keys": {
        "rsa1024": rsa_small.jwk,
        "ec256_off_curve": dict(es256.jwk, y=b64(i2b((es256.private.public_key().public_numbers().y + 1)
                                                     % 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffff, 32))),
        "ed_private": dict(ed_a.jwk, d=b64(ed_a.private.private_bytes_raw())),
        "ec_private": dict(es256.jwk, d=b64(i2b(es256.private.private_numbers().private_value, 32))),
    },
    "cases": cases,
}
print(json.dumps(doc, indent=1))

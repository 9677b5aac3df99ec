"""Keys and JWTs shaped like Better Auth 1.4's jwt plugin makes them — and every way to get
them wrong. Built with `cryptography` (signatures) and the standard library only, so the
tests never share code with gatehouse; `test_auth_helpers.py` cross-checks the output with
PyJWT, an independent verifier.

    key = SigningKey.generate("EdDSA")          # kid: 32 chars [A-Za-z0-9], like Better Auth
    server.set_keys([key.jwk()])                # the public JWK, members in Better Auth's order
    token = key.token(better_auth_payload(server.origin))
    # header exactly {"alg":"EdDSA","kid":"..."} (no "typ"), compact JSON, unpadded base64url

Shapes (see Tests/Fixtures/better-auth-1.4-examples.json):
    OKP JWK  {"alg","crv","x","kty","kid"}
    EC  JWK  {"alg","crv","kty","x","y","kid"}
    RSA JWK  {"alg","kty","n","e","kid"}
    payload  {"iat","name","email","emailVerified","image","createdAt","updatedAt","id","sub","exp","iss","aud"}
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import string
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ALGORITHMS = ["EdDSA", "ES256", "ES512", "RS256", "PS256"]
_ALNUM = string.ascii_letters + string.digits


# ---------------------------------------------------------------------------------------
# encoding


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def json_bytes(obj: Any) -> bytes:
    """JSON the way JavaScript's JSON.stringify writes it: compact, members in insertion
    order, non-ASCII as UTF-8."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _int_bytes(value: int, length: int | None = None) -> bytes:
    length = length or max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(length, "big")


def random_id(length: int = 32) -> str:
    """Better Auth's id / kid alphabet: [A-Za-z0-9]."""
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def split(token: str) -> tuple[str, str, str]:
    header, payload, signature = token.split(".")
    return header, payload, signature


def header_of(token: str) -> dict:
    return json.loads(b64url_decode(token.split(".")[0]))


def payload_of(token: str) -> dict:
    return json.loads(b64url_decode(token.split(".")[1]))


def payload_bytes_of(token: str) -> bytes:
    return b64url_decode(token.split(".")[1])


# ---------------------------------------------------------------------------------------
# keys


@dataclass
class SigningKey:
    alg: str
    kid: str
    private_key: Any

    @classmethod
    def generate(cls, alg: str = "EdDSA", kid: str | None = None) -> "SigningKey":
        if alg == "EdDSA":
            private = ed25519.Ed25519PrivateKey.generate()
        elif alg == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        elif alg == "ES512":
            private = ec.generate_private_key(ec.SECP521R1())
        elif alg in ("RS256", "PS256"):
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            raise ValueError(f"unsupported algorithm {alg}")
        return cls(alg=alg, kid=kid or random_id(), private_key=private)

    @property
    def public_key(self):
        return self.private_key.public_key()

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def public_raw(self) -> bytes:
        """The public key bytes a confused verifier might use as an HMAC secret."""
        if self.alg == "EdDSA":
            return self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return self.public_pem()

    def jwk(self, kid: str | None = None, alg: str | None = None) -> dict:
        """The public JWK exactly as Better Auth publishes it (member order included)."""
        kid = self.kid if kid is None else kid
        alg = self.alg if alg is None else alg
        if self.alg == "EdDSA":
            x = self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return {"alg": alg, "crv": "Ed25519", "x": b64url(x), "kty": "OKP", "kid": kid}
        if self.alg in ("ES256", "ES512"):
            numbers = self.public_key.public_numbers()
            size = 32 if self.alg == "ES256" else 66
            crv = "P-256" if self.alg == "ES256" else "P-521"
            return {
                "alg": alg, "crv": crv, "kty": "EC",
                "x": b64url(_int_bytes(numbers.x, size)), "y": b64url(_int_bytes(numbers.y, size)),
                "kid": kid,
            }
        numbers = self.public_key.public_numbers()
        return {"alg": alg, "kty": "RSA", "n": b64url(_int_bytes(numbers.n)), "e": b64url(_int_bytes(numbers.e)), "kid": kid}

    def sign_bytes(self, signing_input: bytes, alg: str | None = None) -> bytes:
        """The raw JWS signature (RFC 7518 §3) over `signing_input` with this key."""
        alg = alg or self.alg
        if alg == "EdDSA":
            return self.private_key.sign(signing_input)
        if alg in ("ES256", "ES512"):
            digest = hashes.SHA256() if alg == "ES256" else hashes.SHA512()
            size = 32 if alg == "ES256" else 66
            r, s = decode_dss_signature(self.private_key.sign(signing_input, ec.ECDSA(digest)))
            return _int_bytes(r, size) + _int_bytes(s, size)
        if alg == "RS256":
            return self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        if alg == "PS256":
            return self.private_key.sign(
                signing_input, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256()
            )
        raise ValueError(f"cannot sign {alg} with a {self.alg} key")

    def token(
        self,
        payload: dict | bytes,
        header: dict | None = None,
        *,
        kid: str | None = None,
        alg: str | None = None,
        omit_kid: bool = False,
        extra_header: dict | None = None,
    ) -> str:
        """A compact JWS. Default header: {"alg": <key alg>, "kid": <key kid>} (Better Auth's).
        `header` replaces it entirely; `kid`/`alg` change the header values only (the
        signature is always made with this key and its own algorithm)."""
        if header is None:
            header = {"alg": alg or self.alg}
            if not omit_kid:
                header["kid"] = self.kid if kid is None else kid
            if extra_header:
                header.update(extra_header)
        return sign_compact(header, payload, lambda data: self.sign_bytes(data))


# Every token this suite signs, so test_zz_no_secrets can grep all of gatehouse's output for them.
MINTED: list[str] = []


def sign_compact(header: dict | bytes, payload: dict | bytes, signer) -> str:
    h = header if isinstance(header, bytes) else json_bytes(header)
    p = payload if isinstance(payload, bytes) else json_bytes(payload)
    signing_input = f"{b64url(h)}.{b64url(p)}".encode("ascii")
    token = f"{signing_input.decode()}.{b64url(signer(signing_input))}"
    MINTED.append(token)
    return token


# ---------------------------------------------------------------------------------------
# payloads


def _iso(ts: float) -> str:
    """JavaScript's Date.prototype.toISOString(): milliseconds and a Z."""
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def better_auth_payload(
    origin: str,
    *,
    now: float | None = None,
    user_id: str | None = None,
    email: str | None = None,
    name: str = "Ada Lovelace",
    expires_in: int = 900,
    **extra: Any,
) -> dict:
    """What Better Auth 1.4's jwt plugin signs by default (definePayload = the session's
    user; iss and aud = the base URL's origin; exp = iat + 15 min). Extra claims are appended;
    a claim given as None in `extra` is removed (e.g. sub=None)."""
    iat = int(now if now is not None else time.time())
    user_id = user_id or random_id()
    email = email or f"user-{user_id[:8].lower()}@example.com"
    payload: dict[str, Any] = {
        "iat": iat,
        "name": name,
        "email": email,
        "emailVerified": True,
        "image": None,
        "createdAt": _iso(iat - 86400 * 10 + 0.789),
        "updatedAt": _iso(iat - 3600),
        "id": user_id,
        "sub": user_id,
        "exp": iat + expires_in,
        "iss": origin,
        "aud": origin,
    }
    for key, value in extra.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


# ---------------------------------------------------------------------------------------
# malformed variants (each returns a new token string)


def tamper_payload(token: str, **changes: Any) -> str:
    """Re-encodes the payload with `changes` and keeps the original signature."""
    header, _, signature = split(token)
    payload = payload_of(token)
    payload.update(changes)
    return f"{header}.{b64url(json_bytes(payload))}.{signature}"


def with_padding(token: str) -> str:
    """Adds base64 '=' padding to the signature segment (and, if it needs none, to the
    payload segment): not valid base64url for JWS (RFC 7515 §2)."""
    header, payload, signature = split(token)
    if len(signature) % 4:
        return f"{header}.{payload}.{signature}{'=' * (-len(signature) % 4)}"
    if len(payload) % 4:
        return f"{header}.{payload}{'=' * (-len(payload) % 4)}.{signature}"
    return f"{header}=.{payload}.{signature}"


def alg_none(payload: dict, kid: str | None = None, signature: str = "") -> str:
    """An unsecured JWS (RFC 7519 §6): alg "none", empty (or given) signature."""
    header = {"alg": "none"}
    if kid is not None:
        header["kid"] = kid
    return f"{b64url(json_bytes(header))}.{b64url(json_bytes(payload))}.{signature}"


def hs256_with_public_key(key: SigningKey, payload: dict, secret: bytes | None = None) -> str:
    """The classic key-confusion attack: HS256 with the public key bytes as HMAC secret."""
    secret = key.public_pem() if secret is None else secret
    return sign_compact(
        {"alg": "HS256", "kid": key.kid}, payload, lambda data: hmac.new(secret, data, hashlib.sha256).digest()
    )

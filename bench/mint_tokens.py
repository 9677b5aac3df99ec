"""Keys and tokens for bench/run.sh: one Ed25519 key published as a Better Auth-shaped JWKS,
and tokens shaped like Better Auth 1.4's jwt plugin makes them, signed with PyJWT.

    python bench/mint_tokens.py --origin http://127.0.0.1:PORT --out DIR [--distinct N] [--alg EdDSA]

writes into DIR:
    jwks.json       {"keys":[{"alg","crv","x","kty","kid"}]}  (served at /api/auth/jwks)
    token.txt       one token (scenario "repeated": every request sends it)
    tokens.txt      N distinct tokens, one a line (scenario "distinct": different users)
    bad-token.txt   token.txt with its signature altered (must be refused)
    session.txt     a Better Auth bearer-plugin session token (scenario "session"): the URL-encoded
                    <32 alphanumerics>.<base64 HMAC-SHA256>, the same user as token.txt
    get-session.json  Better Auth's get-session answer for it (served at /api/auth/get-session)

Header exactly {"alg","kid"} (no "typ"); payload {"iat","name","email","emailVerified","image",
"createdAt","updatedAt","id","sub","exp","iss","aud"} with iss = aud = the origin. The tokens
live 2 h (Better Auth's default is 15 min) so a long bench never sees one expire.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import secrets
import string
import sys
import time
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

ALNUM = string.ascii_letters + string.digits
LIFETIME = 2 * 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def random_id(length: int = 32) -> str:
    return "".join(secrets.choice(ALNUM) for _ in range(length))


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def make_key(alg: str):
    """(private key, public JWK in Better Auth's member order)."""
    kid = random_id()
    if alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
        x = private.public_key().public_bytes_raw()
        return private, {"alg": "EdDSA", "crv": "Ed25519", "x": b64url(x), "kty": "OKP", "kid": kid}
    if alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        numbers = private.public_key().public_numbers()
        return private, {
            "alg": "ES256",
            "crv": "P-256",
            "kty": "EC",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
            "kid": kid,
        }
    raise SystemExit(f"mint_tokens: unsupported --alg {alg} (EdDSA or ES256)")


def payload(origin: str, now: int, user_id: str) -> dict:
    return {
        "iat": now,
        "name": f"Bench User {user_id[:6]}",
        "email": f"user-{user_id[:8].lower()}@example.com",
        "emailVerified": True,
        "image": None,
        "createdAt": iso(now - 86400 * 10 + 0.789),
        "updatedAt": iso(now - 3600),
        "id": user_id,
        "sub": user_id,
        "exp": now + LIFETIME,
        "iss": origin,
        "aud": origin,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--origin", required=True, help="issuer and audience, e.g. http://127.0.0.1:8000")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--distinct", type=int, default=20000)
    parser.add_argument("--alg", default="EdDSA")
    args = parser.parse_args()

    private, jwk = make_key(args.alg)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "jwks.json").write_text(json.dumps({"keys": [jwk]}, separators=(",", ":")))

    now = int(time.time())
    # typ=None drops PyJWT's default "typ"; the header is then {"alg","kid"}, like Better Auth's.
    headers = {"kid": jwk["kid"], "typ": None}

    def sign(user_id: str) -> str:
        return jwt.encode(payload(args.origin, now, user_id), private, algorithm=args.alg, headers=headers)

    user_id = random_id()
    token = sign(user_id)
    (args.out / "token.txt").write_text(token + "\n")

    # A session of the same user, as Better Auth's bearer plugin hands it out (set-auth-token).
    session_token = random_id()
    signature = base64.b64encode(hmac.new(secrets.token_bytes(32), session_token.encode(), hashlib.sha256).digest())
    (args.out / "session.txt").write_text(urllib.parse.quote(f"{session_token}.{signature.decode()}", safe="") + "\n")
    claims = payload(args.origin, now, user_id)
    user = {k: claims[k] for k in ("name", "email", "emailVerified", "image", "createdAt", "updatedAt", "id")}
    session = {
        "id": random_id(), "token": session_token, "userId": user_id, "expiresAt": iso(now + LIFETIME),
        "createdAt": iso(now - 60), "updatedAt": iso(now - 60), "ipAddress": "127.0.0.1", "userAgent": "bench",
    }
    (args.out / "get-session.json").write_text(json.dumps({"session": session, "user": user}, separators=(",", ":")))

    head, body, sig = token.split(".")
    flipped = ("B" if sig[0] == "A" else "A") + sig[1:]
    (args.out / "bad-token.txt").write_text(f"{head}.{body}.{flipped}\n")

    seen: set[str] = set()
    with open(args.out / "tokens.txt", "w") as f:
        while len(seen) < args.distinct:
            user_id = random_id()
            if user_id in seen:
                continue
            seen.add(user_id)
            f.write(sign(user_id) + "\n")

    # Check the output with PyJWT itself, against the public key from the JWKS.
    public = jwt.PyJWK(jwk).key
    for sample in (token, sign(random_id())):
        header = jwt.get_unverified_header(sample)
        assert list(header) == ["alg", "kid"], header
        jwt.decode(sample, public, algorithms=[args.alg], audience=args.origin, issuer=args.origin)
    print(f"mint_tokens: {args.alg} key {jwk['kid']}, 1 + {args.distinct} tokens in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

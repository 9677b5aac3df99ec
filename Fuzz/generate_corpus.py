#!/usr/bin/env python3
"""Regenerates the seed corpora in Fuzz/corpus/{token,jwks}/ (standard library only); the
inputs fuzzing added (SHA-1 names) and crash reproducers (crash-*) stay.

Seeds come from Tests/Fixtures/better-auth-1.4-examples.json (found relative to this
file, like Tests/JOSETests/Support.swift) plus hand-made malformed and edge-case
variants. File-name prefixes are checked by the replay build (scripts/fuzz.sh --replay):
`accept-*` must be accepted (token: verifies under one of the fixed profiles; jwks: a key
set with at least one usable key), `reject-*` must not be. Other names carry no
expectation. Usage: python3 Fuzz/generate_corpus.py
"""
import base64
import json
import pathlib
import re

HERE = pathlib.Path(__file__).resolve().parent
KEPT = re.compile(r"^(?:[0-9a-f]{40}|crash-.+)$")


def project_fixture():
    return json.loads((HERE.parent / "Tests/Fixtures/better-auth-1.4-examples.json").read_text())


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


def write(directory, name, data):
    if isinstance(data, str):
        data = data.encode()
    (directory / name).write_bytes(data)


def token_corpus(fx, out):
    tokens = {
        "ex1": fx["ex1_token"], "ex2": fx["ex2_token_new"], "ex3-es256": fx["ex3_es256_token"],
        "ex3-rs256": fx["ex3_rs256_token"], "ex3-ps256": fx["ex3_ps256_token"],
    }
    for name, token in tokens.items():
        write(out, f"accept-{name}", token)

    t = fx["ex1_token"]
    h, p, s = t.split(".")
    header = json.loads(unb64(h))
    payload = json.loads(unb64(p))
    sig = unb64(s)

    def tok(hdr, pl, signature=s):
        hdr = hdr if isinstance(hdr, str) else b64(compact(hdr))
        pl = pl if isinstance(pl, str) else b64(compact(pl))
        return f"{hdr}.{pl}.{signature}"

    # Signature and key-selection attacks: well-formed, must never verify.
    write(out, "reject-tampered-sub", tok(h, dict(payload, sub="admin")))
    write(out, "reject-tampered-exp", tok(h, dict(payload, exp=4102444800)))
    write(out, "reject-alg-none", tok({"alg": "none"}, p, b64(b"x")))
    write(out, "reject-alg-none-empty-sig", tok({"alg": "none"}, p, ""))
    write(out, "reject-alg-hs256", tok(dict(header, alg="HS256"), p))
    write(out, "reject-alg-lowercase", tok(dict(header, alg="eddsa"), p))
    write(out, "reject-alg-missing", tok({"kid": header["kid"]}, p))
    write(out, "reject-alg-number", tok(dict(header, alg=1), p))
    write(out, "reject-kid-unknown", tok(dict(header, kid="nope"), p))
    write(out, "reject-kid-number", tok(dict(header, kid=7), p))
    write(out, "reject-no-kid", tok({"alg": "EdDSA"}, p))
    write(out, "reject-kid-other-key", tok(dict(header, kid="82437b8c-d052-47e3-b7a8-b9fb1c9f6184"), p))
    rs = fx["ex3_rs256_token"].split(".")
    rs_header = json.loads(unb64(rs[0]))
    write(out, "reject-rs256-as-ps256", tok(dict(rs_header, alg="PS256"), rs[1], rs[2]))
    write(out, "reject-rs256-as-hs256", tok(dict(rs_header, alg="HS256"), rs[1], rs[2]))
    write(out, "reject-sig-short", tok(h, p, b64(sig[:-1])))
    write(out, "reject-sig-long", tok(h, p, b64(sig + b"\0")))
    write(out, "reject-sig-flipped", tok(h, p, b64(bytes([sig[0] ^ 1]) + sig[1:])))
    write(out, "reject-sig-zero", tok(h, p, b64(bytes(64))))
    write(out, "reject-crit", tok(dict(header, crit=["exp"]), p))
    write(out, "reject-jwk-header", tok(dict(header, jwk={"kty": "OKP", "crv": "Ed25519", "x": "AA"}), p))
    # Encoding strictness.
    write(out, "reject-padding", t + "==")
    write(out, "reject-noncanonical-last-char", t[:-1] + chr(ord(t[-1]) + 1))
    write(out, "reject-standard-base64", t.replace("-", "+").replace("_", "/"))
    write(out, "reject-whitespace", h + ". " + p + "." + s)
    write(out, "reject-trailing-newline", t + "\n")
    write(out, "reject-bearer-prefix", "Bearer " + t)
    write(out, "reject-len-mod4-1", tok(h, p, s + "A"))
    # Structure.
    for name, data in {
        "reject-empty": "", "reject-dot": ".", "reject-two-dots": "..", "reject-abc": "a.b.c",
        "reject-two-parts": h + "." + p, "reject-four-parts": t + "." + s,
        "reject-jwe-five-parts": ".".join([h, p, s, s, s]), "reject-empty-header": "." + p + "." + s,
        "reject-empty-payload": h + ".." + s, "reject-empty-signature": h + "." + p + ".",
        "reject-json-serialization": compact({"payload": p, "protected": h, "signature": s}),
    }.items():
        write(out, name, data)
    # Header/payload JSON edge cases (signature is ex1's, so none of these verify).
    raw = {
        "header-array": b'["EdDSA"]', "header-string": b'"EdDSA"', "header-null": b"null",
        "header-duplicate-alg": b'{"alg":"EdDSA","alg":"none","kid":"PL5qJFMdMIKGO8RcrAA8PDH2kCYknVZS"}',
        "header-bom": b'\xef\xbb\xbf{"alg":"EdDSA"}', "header-invalid-utf8": b'{"alg":"EdDSA","x":"\xff"}',
        "header-overlong-utf8": b'{"alg":"\xc0\xafEdDSA"}', "header-trailing": b'{"alg":"EdDSA"} x',
        "header-escaped-alg": b'{"alg":"\\u0045dDSA","kid":"PL5qJFMdMIKGO8RcrAA8PDH2kCYknVZS"}',
        "header-nul-escape": b'{"alg":"EdDSA\\u0000","kid":"PL5qJFMdMIKGO8RcrAA8PDH2kCYknVZS"}',
    }
    for name, data in raw.items():
        write(out, "reject-" + name, tok(b64(data), p))
    payloads = {
        "payload-array": b"[1,2]", "payload-number": b"1765181700",
        "payload-duplicate-sub": b'{"sub":"a","sub":"b","exp":1765181700}',
        "payload-deep-16": b'{"a":' * 15 + b"{}" + b"}" * 15,
        "payload-deep-17": b'{"a":' * 16 + b"{}" + b"}" * 16,
        "payload-deep-array": b'{"a":' + b"[" * 40 + b"]" * 40 + b"}",
        "payload-huge-numbers": b'{"exp":1e400,"iat":-1e400,"nbf":123456789012345678901234567890,"x":1e-400,"y":-0,"z":9223372036854775808,"w":-9223372036854775808}',
        "payload-exp-string": b'{"exp":"1765181700","sub":"a"}',
        "payload-bad-numbers": b'{"exp":01,"iat":1.,"nbf":.5,"x":-,"y":1e}',
        "payload-surrogate-pair": b'{"sub":"\\ud83d\\ude00","exp":1765181700}',
        "payload-lone-high-surrogate": b'{"sub":"\\ud83d","exp":1765181700}',
        "payload-lone-low-surrogate": b'{"sub":"\\ude00x","exp":1765181700}',
        "payload-reversed-surrogates": b'{"sub":"\\ude00\\ud83d","exp":1765181700}',
        "payload-high-then-bmp": b'{"sub":"\\ud83d\\u0041","exp":1765181700}',
        "payload-escapes": b'{"sub":"\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20AC","exp":1765181700}',
        "payload-bad-escape": b'{"sub":"\\x41"}',
        "payload-control-char": b'{"sub":"a\tb"}',
        "payload-utf8": '{"sub":"Ada Lovelace \u00e9\u20ac\U0001F600","exp":1765181700}'.encode(),
        "payload-whitespace": b' \t\r\n{ "sub" : "a" , "exp" : 1765181700 }\n',
        "payload-literals": b'{"a":true,"b":false,"c":null,"d":tru,"e":nul}',
    }
    for name, data in payloads.items():
        write(out, "reject-" + name, tok(h, b64(data)))
    # Size limit (16 KiB): exactly at it, and one byte over it.
    write(out, "reject-size-16384", pad_to(h, payload, 16384))
    write(out, "reject-size-16385", pad_to(h, payload, 16385))


def pad_to(h, payload, size):
    """A header.payload.signature token of exactly `size` bytes; the signature is filler."""
    body = f"{h}.{b64(compact(dict(payload, pad='x' * (size * 3 // 4 - 1200))))}."
    assert len(body) < size
    return body + "A" * (size - len(body))


def jwks_corpus(fx, out):
    sets = {k: fx[k] for k in ["ex1_jwks", "ex2_jwks", "ex3_es256_jwks", "ex3_rs256_jwks", "ex3_es512_jwks", "ex3_ps256_jwks"]}
    for name, value in sets.items():
        write(out, "accept-" + name.replace("_", "-"), json.dumps(value, indent=2))
    all_keys = [k for value in sets.values() for k in value["keys"]]
    write(out, "accept-all-fixture-keys", compact({"keys": all_keys}))
    ed = sets["ex1_jwks"]["keys"][0]
    ec = sets["ex3_es256_jwks"]["keys"][0]
    p521 = sets["ex3_es512_jwks"]["keys"][0]
    rsa = sets["ex3_rs256_jwks"]["keys"][0]
    write(out, "db-row-single-jwk", fx["db_row_publicKey_example"])
    write(out, "accept-no-kid", compact({"keys": [json.loads(fx["db_row_publicKey_example"])]}))

    def kset(*keys, **extra):
        return compact(dict({"keys": list(keys)}, **extra))

    def without(key, *names):
        return {k: v for k, v in key.items() if k not in names}

    n = unb64(rsa["n"])
    one_key_bad = {
        "private-d": dict(ed, d=b64(bytes(32))), "private-k-oct": {"kty": "oct", "k": b64(b"secret"), "kid": "h"},
        "use-enc": dict(ed, use="enc"), "use-number": dict(ed, use=1),
        "key-ops-sign": dict(ed, key_ops=["sign"]), "key-ops-mixed": dict(ed, key_ops=["verify", 1]),
        "alg-hs256": dict(ed, alg="HS256"), "alg-mismatch": dict(ed, alg="ES256"), "alg-none": dict(ed, alg="none"),
        "kty-missing": without(ed, "kty"), "kty-number": dict(ed, kty=1), "kty-unknown": dict(ed, kty="oct"),
        "crv-x25519": dict(ed, crv="X25519"), "crv-missing": without(ed, "crv"),
        "ed-x-short": dict(ed, x=ed["x"][:-2]), "ed-x-padded": dict(ed, x=ed["x"] + "="),
        "ec-off-curve": dict(ec, y=b64(unb64(ec["y"])[:-1] + bytes([unb64(ec["y"])[-1] ^ 1]))),
        "ec-zero-point": dict(ec, x=b64(bytes(32)), y=b64(bytes(32))),
        "ec-short-x": dict(ec, x=b64(unb64(ec["x"])[1:])), "ec-crv-p384": dict(ec, crv="P-384"),
        "ec-p521-truncated": dict(p521, x=b64(unb64(p521["x"])[1:])),
        "ec-alg-es512-on-p256": dict(ec, alg="ES512"), "ec-y-missing": without(ec, "y"),
        "rsa-1024": dict(rsa, n=b64(n[:128])), "rsa-8200": dict(rsa, n=b64(b"\x01" + bytes(1024) + b"\x01")),
        "rsa-even-n": dict(rsa, n=b64(n[:-1] + bytes([n[-1] & 0xFE]))), "rsa-e-1": dict(rsa, e="AQ"),
        "rsa-e-even": dict(rsa, e="AQAC"), "rsa-e-5-bytes": dict(rsa, e=b64(b"\x01\x00\x00\x00\x01")),
        "rsa-e-empty": dict(rsa, e=""), "rsa-n-zero": dict(rsa, n="AA"), "rsa-alg-es256": dict(rsa, alg="ES256"),
        "kid-number": dict(ed, kid=5),
    }
    for name, key in one_key_bad.items():
        write(out, "reject-" + name, kset(key))
    write(out, "accept-leading-zero-n", kset(dict(rsa, n=b64(b"\0\0" + n), kid="lz")))
    write(out, "accept-key-ops-verify", kset(dict(ed, key_ops=["verify", "sign"], use="sig")))
    write(out, "accept-rsa-no-alg", kset(without(rsa, "alg")))
    write(out, "accept-duplicate-kids", kset(ed, dict(ec, kid=ed["kid"]), ec))
    write(out, "accept-mixed-good-and-bad", kset(one_key_bad["private-d"], 1, "x", None, [], ed, one_key_bad["ec-off-curve"], extra="ok"))
    write(out, "accept-100-keys", kset(*[dict(ed, kid=f"k{i}") for i in range(100)]))
    write(out, "reject-101-keys", kset(*[{} for _ in range(101)]))
    # Document-level.
    for name, data in {
        "reject-empty": b"", "reject-ws": b" \n", "reject-object-empty": b"{}", "reject-keys-empty": b'{"keys":[]}',
        "reject-keys-object": b'{"keys":{}}', "reject-keys-null": b'{"keys":null}', "reject-array": b"[]",
        "reject-bare-key": compact(ed).encode(),
        "reject-duplicate-keys-member": b'{"keys":[],"keys":[' + compact(ed).encode() + b"]}",
        "reject-duplicate-key-member": b'{"keys":[{"kty":"OKP","kty":"EC"}]}',
        "reject-trailing-data": kset(ed).encode() + b"x", "reject-trailing-comma": b'{"keys":[],}',
        "reject-bom": b"\xef\xbb\xbf" + kset(ed).encode(), "reject-invalid-utf8": b'{"keys":[],"x":"\xc3\x28"}',
        "reject-invalid-utf8-outside-string": b'{"keys":[]}\xff', "reject-overlong": b'{"keys":[],"x":"\xe0\x80\xaf"}',
        "reject-utf8-surrogate-bytes": b'{"keys":[],"x":"\xed\xa0\x80"}',
        "reject-lone-high-surrogate": b'{"keys":[],"x":"\\ud800"}', "reject-lone-low-surrogate": b'{"keys":[],"x":"\\udc00"}',
        "reject-surrogate-then-eof": b'{"keys":[],"x":"\\ud800\\u', "reject-surrogate-pair-ok": b'{"keys":[],"x":"\\ud83d\\ude00\\uDBFF\\uDFFF"}',
        "reject-escapes": b'{"keys":[],"x":"\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000\\u001f\\u007F\\uFFFF"}',
        "reject-bad-escapes": b'{"keys":[],"x":"\\a\\u12G4"}', "reject-raw-control": b'{"keys":[],"x":"a\x01"}',
        "reject-deep-16": b"[" * 16 + b"]" * 16, "reject-deep-17": b"[" * 17 + b"]" * 17,
        "reject-deep-1000": b"[" * 1000, "reject-deep-objects": b'{"a":' * 20 + b"1" + b"}" * 20,
        "reject-keys-deep": b'{"keys":[' + b"[" * 14 + b"]" * 14 + b"]}",
        "reject-numbers": b'{"keys":[],"a":[0,-0,1e400,-1e400,1e-400,123456789012345678,1234567890123456789,12345678901234567890,-9223372036854775808,-9223372036854775809,1.5e+3,1E-3,0.000001]}',
        "reject-bad-numbers": b'{"keys":[],"a":01}', "reject-minus": b'{"keys":[],"a":-}', "reject-dot-number": b'{"keys":[],"a":1.}',
        "reject-exp-number": b'{"keys":[],"a":1e+}', "reject-plus-number": b'{"keys":[],"a":+1}',
        "reject-huge-int": b'{"keys":[],"a":' + b"9" * 400 + b"}",
        "reject-literals": b"[true,false,null,tru]", "reject-unterminated": b'{"keys":[{"kty":"OKP"',
        "reject-single-quotes": b"{'keys':[]}", "reject-nan": b'{"keys":[],"a":NaN}',
    }.items():
        write(out, name, data)


def main():
    fx = project_fixture()
    for kind, build in [("token", token_corpus), ("jwks", jwks_corpus)]:
        directory = HERE / "corpus" / kind
        directory.mkdir(parents=True, exist_ok=True)
        # Inputs the fuzzers added (SHA-1 names, `FUZZ_KEEP=1 scripts/fuzz.sh`) and crash
        # reproducers (`crash-*`) are regression inputs: kept. Only the seeds are rewritten.
        kept = [f for f in directory.iterdir() if KEPT.match(f.name)]
        for f in directory.iterdir():
            if f not in kept:
                f.unlink()
        build(fx, directory)
        files = list(directory.iterdir())
        print(f"{directory.relative_to(HERE.parent)}: {len(files) - len(kept)} seeds + {len(kept)} kept, "
              f"{sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()

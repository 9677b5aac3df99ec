"""Differential test: gatehouse's HTTP1 request parser against h11 and httptools (llhttp).

What it proves
--------------
gatehouse parses requests and forwards them to a FastAPI app whose server (uvicorn) parses HTTP/1.1
with h11 or with httptools. Request smuggling lives in the gaps between two parsers of one chain.
This test generates a few thousand requests from a fixed seed -- valid ones and mutations aimed at
framing (duplicated and conflicting Content-Length, CL+TE, Transfer-Encoding variants and case,
chunk sizes with leading zeros / overflow / extensions / whitespace, bare LF and CR, obs-fold,
space before the colon, control bytes and NUL in the target and in values, absolute-form targets,
HTTP/1.0 against 1.1, pipelined pairs, trailers) -- and asserts one rule:

    whenever gatehouse accepts a connection's bytes, h11 and httptools both accept them too, and
    all three agree on the sequence of messages: method, target, header fields (values compared
    after the same OWS trimming) and body bytes.

gatehouse refusing what the others accept is allowed (it is the strict one); those cases are
counted and printed. A minimum number of accepted cases keeps the test from passing vacuously.

Two shapes are deliberately not generated, because gatehouse accepts them on purpose and one of
the libraries does not parse them at all (no framing question is involved):
- extension methods (`FOO`, lowercase `get`): RFC 9110 allows any token; llhttp knows a fixed list
  (when a framing mutation produces one anyway, httptools is compared up to that message, h11 on);
- empty lines before a request line: RFC 9112 §2.2 says a server SHOULD skip them; h11 refuses.

Where a connection ends: after a message that does not keep the connection alive (HTTP/1.1 with
`Connection: close`, HTTP/1.0 without `keep-alive`) nothing further is compared, because no server
reads on; and h11 never keeps an HTTP/1.0 connection alive, so it is compared up to the first 1.0
message.

Run by `make test` with HTTP1_PROBE set to the `http1-probe` binary (Sources/http1-probe), which
prints, for each file, how gatehouse frames it.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

h11 = pytest.importorskip("h11")
httptools = pytest.importorskip("httptools")

PROBE = os.environ.get("HTTP1_PROBE")
if not PROBE:
    pytest.skip(
        "HTTP1_PROBE is not set: build the probe (swift build --product http1-probe) and set "
        "HTTP1_PROBE=$(swift build --show-bin-path)/http1-probe",
        allow_module_level=True,
    )

# Fixed so that every run checks the same cases; override to explore (e.g. HTTP1_DIFFERENTIAL_SEED=7
# HTTP1_DIFFERENTIAL_CASES=50000).
SEED = int(os.environ.get("HTTP1_DIFFERENTIAL_SEED", "20240611"))
CASES = int(os.environ.get("HTTP1_DIFFERENTIAL_CASES", "3000"))
MIN_ACCEPTED = CASES // 3

OWS = b" \t"


# ---------------------------------------------------------------------------------------------
# Generation


@dataclass
class Message:
    method: bytes = b"GET"
    target: bytes = b"/"
    version: bytes = b"HTTP/1.1"
    fields: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""  # the framed body bytes as sent (chunked framing included)
    line_end: bytes = b"\r\n"

    def encode(self) -> bytes:
        lines = [self.method + b" " + self.target + b" " + self.version]
        lines += [name + b":" + value for name, value in self.fields]
        return self.line_end.join(lines) + self.line_end + self.line_end + self.body


METHODS = [b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS", b"HEAD"]
HOSTS = [b"example.com", b"api.example.com:8443", b"127.0.0.1", b"[::1]:8080", b"localhost:8000", b"a-b.example"]
NAMES = [b"Accept", b"User-Agent", b"X-Request-Id", b"Cookie", b"Authorization", b"Content-Type",
         b"Accept-Encoding", b"X-Forwarded-For", b"If-None-Match", b"x-custom_name", b"X!#$%&'*+-.^`|~"]
PATH_BYTES = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@%"
ODD_TARGET_BYTES = b"\"<>\\^`{|}"
VALUE_BYTES = bytes(range(0x21, 0x7F))
TOKEN_BYTES = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"


def token(rng: random.Random, length: int | None = None) -> bytes:
    return bytes(rng.choice(TOKEN_BYTES) for _ in range(length or rng.randint(1, 10)))


def target(rng: random.Random) -> bytes:
    segments = [bytes(rng.choice(PATH_BYTES) for _ in range(rng.randint(0, 12))) for _ in range(rng.randint(1, 4))]
    path = b"/" + b"/".join(segments)
    if rng.random() < 0.4:
        path += b"?" + b"&".join(token(rng, 3) + b"=" + bytes(rng.choice(PATH_BYTES + b"/?") for _ in range(rng.randint(0, 8)))
                                 for _ in range(rng.randint(1, 3)))
    if rng.random() < 0.1:
        path += bytes([rng.choice(ODD_TARGET_BYTES)])
    return path


def value(rng: random.Random) -> bytes:
    inner = bytearray(rng.choice(VALUE_BYTES) for _ in range(rng.randint(0, 30)))
    if inner and rng.random() < 0.3:
        inner.insert(rng.randrange(len(inner)), rng.choice([0x20, 0x09]))
    if inner and rng.random() < 0.15:
        inner.insert(rng.randrange(len(inner)), rng.randint(0x80, 0xFF))  # obs-text
    lead = bytes(rng.choice(OWS) for _ in range(rng.choice([0, 1, 1, 2])))
    trail = bytes(rng.choice(OWS) for _ in range(rng.choice([0, 0, 1, 2])))
    return lead + bytes(inner) + trail


def hex_size(rng: random.Random, size: int) -> bytes:
    digits = format(size, "x")
    if rng.random() < 0.3:
        digits = digits.upper()
    if rng.random() < 0.2:
        digits = "0" * rng.randint(1, 16 - len(digits)) + digits
    return digits.encode()


def chunk_extension(rng: random.Random) -> bytes:
    out = b""
    for _ in range(rng.randint(1, 3)):
        out += b";" + token(rng)
        roll = rng.random()
        if roll < 0.4:
            out += b"=" + token(rng)
        elif roll < 0.7:
            quoted = b"".join(rng.choice([b"a", b"Z", b"0", b" ", b"\t", b",", b";", b"=", b"/", b"\xe9", b'\\"', b"\\a"])
                              for _ in range(rng.randint(0, 6)))
            out += b'="' + quoted + b'"'
    return out


def chunked_body(rng: random.Random, data: bytes, trailers: bool) -> bytes:
    out = b""
    rest = data
    while rest:
        size = rng.randint(1, max(1, len(rest)))
        ext = chunk_extension(rng) if rng.random() < 0.2 else b""
        out += hex_size(rng, size) + ext + b"\r\n" + rest[:size] + b"\r\n"
        rest = rest[size:]
    out += b"0" + (chunk_extension(rng) if rng.random() < 0.1 else b"") + b"\r\n"
    if trailers:
        for _ in range(rng.randint(1, 3)):
            out += token(rng) + b":" + value(rng) + b"\r\n"
    return out + b"\r\n"


def valid_message(rng: random.Random) -> Message:
    message = Message(method=rng.choice(METHODS), target=target(rng))
    if rng.random() < 0.15:
        message.version = b"HTTP/1.0"
    fields = [(b"Host", b" " + rng.choice(HOSTS))]
    for _ in range(rng.randint(0, 6)):
        fields.append((rng.choice(NAMES) if rng.random() < 0.7 else token(rng), value(rng)))
    if message.version == b"HTTP/1.0" and rng.random() < 0.6:
        fields.append((b"Connection", b" keep-alive"))
    elif rng.random() < 0.05:
        fields.append((b"Connection", b" close"))
    if rng.random() < 0.05:
        fields.append((b"Expect", b" 100-continue"))
    data = bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 80)))
    framing = rng.random()
    if framing < 0.35 and message.version == b"HTTP/1.1":
        te = rng.choice([b"chunked", b"chunked", b"Chunked", b"CHUNKED", b" chunked\t"])
        fields.append((rng.choice([b"Transfer-Encoding", b"transfer-encoding"]), b" " + te))
        message.body = chunked_body(rng, data, trailers=rng.random() < 0.2)
    elif framing < 0.7:
        length = str(len(data)).encode()
        if rng.random() < 0.1:
            length = b"0" + length
        fields.append((rng.choice([b"Content-Length", b"content-length"]), b" " + length))
        message.body = data
    rng.shuffle(fields)
    message.fields = fields
    return message


def field_index(message: Message, lowercase_name: bytes) -> int | None:
    for index, (name, _) in enumerate(message.fields):
        if name.lower() == lowercase_name:
            return index
    return None


def insert_field(rng: random.Random, message: Message, name: bytes, value_: bytes) -> None:
    message.fields.insert(rng.randint(0, len(message.fields)), (name, value_))


def mutate(rng: random.Random, message: Message) -> Message:
    """Applies one framing-relevant change to a valid message."""
    kind = rng.randrange(24)
    cl = field_index(message, b"content-length")
    te = field_index(message, b"transfer-encoding")
    if kind == 0:  # duplicated Content-Length, identical or not
        length = len(message.body)
        insert_field(rng, message, b"Content-Length", b" " + str(length + rng.choice([0, 0, 1, -1])).encode())
    elif kind == 1:  # Content-Length list
        if cl is not None:
            del message.fields[cl]
        insert_field(rng, message, b"Content-Length", b" %d, %d" % (len(message.body), len(message.body)))
    elif kind == 2:  # CL + TE
        if te is None:
            insert_field(rng, message, b"Transfer-Encoding", b" chunked")
        else:
            insert_field(rng, message, b"Content-Length", b" " + str(rng.randint(0, 40)).encode())
    elif kind == 3:  # Transfer-Encoding variants
        variants = [b"gzip, chunked", b"chunked, chunked", b"identity", b"chunked;q=1", b"chunked,", b", chunked",
                    b"gzip", b"chunked, gzip", b"x-chunked", b"chunke", b"\"chunked\"", b"", b"chunked , chunked"]
        new = b" " + rng.choice(variants)
        if te is not None:
            message.fields[te] = (message.fields[te][0], new)
        else:
            insert_field(rng, message, b"Transfer-Encoding", new)
    elif kind == 4:  # a second Transfer-Encoding field
        insert_field(rng, message, b"Transfer-Encoding", b" " + rng.choice([b"chunked", b"gzip", b"identity"]))
    elif kind == 5:  # chunk size spellings
        if te is not None:
            spelling = rng.choice([b"0" * 17 + b"1", b"FFFFFFFFFFFFFFFFF", b"8000000000000000", b"0x1", b"-1",
                                   b"1 ", b"1\t", b" 1", b"1 ;a=b", b"1; a=b", b"1;a = b", b"1;", b"1;a=", b"+1",
                                   b"1;a=\"b", b"0000000000000001", b"1;a=b;c", b"1;a=\"x\\\"y\""])
            message.body = spelling + b"\r\nx\r\n0\r\n\r\n"
        else:
            kind = 6
    if kind == 6:  # bare LF somewhere in the head
        message.line_end = rng.choice([b"\n", b"\r\n"])
        if message.line_end == b"\r\n" and message.fields:
            i = rng.randrange(len(message.fields))
            name, value_ = message.fields[i]
            message.fields[i] = (name, value_ + b"\n")
    elif kind == 7:  # bare CR inside a value or at a line end
        i = rng.randrange(len(message.fields))
        name, value_ = message.fields[i]
        at = rng.randint(0, len(value_))
        message.fields[i] = (name, value_[:at] + b"\r" + value_[at:])
    elif kind == 8:  # obs-fold
        i = rng.randrange(len(message.fields))
        name, value_ = message.fields[i]
        message.fields[i] = (name, value_ + b"\r\n" + rng.choice([b" ", b"\t"]) + b"folded")
    elif kind == 9:  # whitespace before the colon
        i = rng.randrange(len(message.fields))
        name, value_ = message.fields[i]
        message.fields[i] = (name + rng.choice([b" ", b"\t"]), value_)
    elif kind == 10:  # control bytes in the target
        at = rng.randint(1, len(message.target))
        message.target = message.target[:at] + bytes([rng.choice([0, 1, 9, 0x0B, 0x1B, 0x7F, 0x80, 0xFF, 0x20])]) + message.target[at:]
    elif kind == 11:  # control bytes in a value
        i = rng.randrange(len(message.fields))
        name, value_ = message.fields[i]
        at = rng.randint(0, len(value_))
        message.fields[i] = (name, value_[:at] + bytes([rng.choice([0, 1, 0x0B, 0x0C, 0x1B, 0x7F])]) + value_[at:])
    elif kind == 12:  # absolute-form and other forms
        message.target = rng.choice([b"http://example.com" + message.target, b"*", b"example.com:443",
                                     b"https://a" + message.target, b"//x" + message.target])
    elif kind == 13:  # version swap
        message.version = rng.choice([b"HTTP/1.0", b"HTTP/1.1", b"HTTP/1.2", b"HTTP/2.0", b"http/1.1", b"HTTP/1.01"])
    elif kind == 14:  # trailers, valid or not
        if te is not None and message.body.endswith(b"\r\n\r\n"):
            trailer = rng.choice([b"X-T: 1", b"X-T:", b"X-T : 1", b" X-T: 1", b"X-T: a\x00b", b"X-T", b"X-T: \xff",
                                  b"X-A: 1\r\nX-B: 2", b"X-T: a\r\n folded"])
            message.body = message.body[:-2] + trailer + b"\r\n\r\n"
    elif kind == 15:  # no Host / two Hosts / odd Host
        host = field_index(message, b"host")
        choice = rng.randrange(3)
        if choice == 0 and host is not None:
            del message.fields[host]
        elif choice == 1:
            insert_field(rng, message, b"Host", b" " + rng.choice(HOSTS))
        elif host is not None:
            message.fields[host] = (b"Host", b" " + rng.choice([b"a b", b"a/b", b"a@b", b"a?b", b"a#b", b"", b"a:b",
                                                                b"[::1", b"xn--bcher-kva.example", b"a:80:80"]))
    elif kind == 16:  # body shorter or longer than Content-Length
        if cl is not None and message.body:
            message.body = message.body[: rng.randrange(len(message.body))] if rng.random() < 0.5 else message.body + b"GET"
    elif kind == 17:  # '#' or a space in the target
        at = rng.randint(1, len(message.target))
        message.target = message.target[:at] + rng.choice([b"#", b" ", b"#frag"]) + message.target[at:]
    elif kind == 18:  # chunk data not followed by CRLF
        if te is not None:
            message.body = b"3\r\nabcd\r\n0\r\n\r\n" if rng.random() < 0.5 else b"3\r\nabc\n0\r\n\r\n"
    elif kind == 19:  # empty field name, non-token name
        insert_field(rng, message, rng.choice([b"", b"X(y)", b"X/y", b"X\xe9"]), b" v")
    elif kind == 20:  # Content-Length spellings
        if cl is not None:
            message.fields[cl] = (message.fields[cl][0], b" " + rng.choice([b"+5", b"-1", b"0x5", b"5 5", b"",
                                                                            b"99999999999999999999", b"1e3"]))
    elif kind == 21:  # Transfer-Encoding on HTTP/1.0
        message.version = b"HTTP/1.0"
        if te is None:
            insert_field(rng, message, b"Transfer-Encoding", b" chunked")
            message.body = b"0\r\n\r\n"
    elif kind == 22:  # a chunk size that does not match its data
        if te is not None:
            message.body = rng.choice([b"5\r\nabc\r\n0\r\n\r\n", b"2\r\nabc\r\n0\r\n\r\n", b"1\r\na\r\n"])
    elif kind == 23:  # NUL anywhere in the head
        message.target = message.target + b"\x00" if rng.random() < 0.5 else message.target
        if message.fields and rng.random() < 0.5:
            name, value_ = message.fields[0]
            message.fields[0] = (name + b"\x00", value_)
    return message


def generate(count: int = CASES, seed: int = SEED) -> list[bytes]:
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        messages = [valid_message(rng)]
        if rng.random() < 0.25:  # pipelined pair
            messages.append(valid_message(rng))
        if rng.random() < 0.55:  # mutation of one of the messages
            index = rng.randrange(len(messages))
            messages[index] = mutate(rng, messages[index])
        cases.append(b"".join(message.encode() for message in messages))
    return cases


# ---------------------------------------------------------------------------------------------
# The three parsers


@dataclass
class Parsed:
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes


def trim(value_: bytes) -> bytes:
    return value_.strip(OWS)


def normalise_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Names case-insensitive; values OWS-trimmed; Transfer-Encoding's value lowercased (h11 does)."""
    out = []
    for name, value_ in headers:
        name = name.lower()
        value_ = trim(value_)
        if name == b"transfer-encoding":
            value_ = value_.lower()
        out.append((name, value_))
    return out


@dataclass
class Verdict:
    """What gatehouse made of one connection's bytes."""

    accepted: list[dict]  # the complete messages a server would act on
    outcome: str  # "accepted" (every byte), "closed" (ends with a non-keep-alive message), "refused", "incomplete"


def gatehouse_verdict(result: dict, length: int) -> Verdict:
    accepted = []
    for message in result["messages"]:
        accepted.append(message)
        if not message["keepAlive"]:
            return Verdict(accepted, "closed")  # the server answers and closes; nothing after is read
    if result["error"] is not None:
        return Verdict(accepted, "refused")
    if not accepted or accepted[-1]["end"] != length:
        return Verdict(accepted, "incomplete")
    return Verdict(accepted, "accepted")


def to_parsed(message: dict) -> Parsed:
    return Parsed(
        method=message["method"].encode("latin-1"),
        target=message["target"].encode("latin-1"),
        headers=[(name.encode("latin-1"), value_.encode("latin-1")) for name, value_ in message["headers"]],
        body=bytes.fromhex(message["body"]),
    )


def run_h11(data: bytes) -> tuple[list[Parsed], str | None]:
    conn = h11.Connection(h11.SERVER)
    messages: list[Parsed] = []
    current: Parsed | None = None
    try:
        conn.receive_data(data)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                break
            if isinstance(event, h11.Request):
                current = Parsed(event.method, event.target, list(event.headers.raw_items()), b"")
            elif isinstance(event, h11.Data):
                current.body += event.data
            elif isinstance(event, h11.EndOfMessage):
                messages.append(current)
                conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
                conn.send(h11.EndOfMessage())
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                else:
                    break
            else:
                break
    except h11.RemoteProtocolError as error:
        return messages, f"h11: {error}"
    return messages, None


class _Collector:
    def __init__(self) -> None:
        self.parser = None
        self.messages: list[Parsed] = []
        self.current: Parsed | None = None

    def on_message_begin(self) -> None:
        self.current = Parsed(b"", b"", [], b"")

    def on_url(self, url: bytes) -> None:
        self.current.target += url

    def on_header(self, name: bytes, value_: bytes) -> None:
        self.current.headers.append((name, value_))

    def on_headers_complete(self) -> None:
        self.current.method = self.parser.get_method()

    def on_body(self, body: bytes) -> None:
        self.current.body += body

    def on_message_complete(self) -> None:
        self.messages.append(self.current)


def run_httptools(data: bytes) -> tuple[list[Parsed], str | None]:
    collector = _Collector()
    parser = httptools.HttpRequestParser(collector)
    collector.parser = parser
    try:
        parser.feed_data(data)
    except Exception as error:  # noqa: BLE001 -- every parser error is a refusal
        return collector.messages, f"httptools: {type(error).__name__}: {error}"
    return collector.messages, None


_llhttp_methods: dict[bytes, bool] = {}


def llhttp_knows(method: bytes) -> bool:
    """llhttp accepts only the methods of its fixed list (RFC 9110 allows any token)."""
    if method not in _llhttp_methods:
        _, error = run_httptools(method + b" / HTTP/1.1\r\nHost: a\r\n\r\n")
        _llhttp_methods[method] = error is None
    return _llhttp_methods[method]


def same(ours: Parsed, theirs: Parsed, header_count: int | None = None) -> str | None:
    if ours.method != theirs.method:
        return f"method {ours.method!r} != {theirs.method!r}"
    if ours.target != theirs.target:
        return f"target {ours.target!r} != {theirs.target!r}"
    if ours.body != theirs.body:
        return f"body {ours.body!r} != {theirs.body!r}"
    mine = normalise_headers(ours.headers)
    other = normalise_headers(theirs.headers)
    if header_count is not None:
        other = other[:header_count]  # httptools reports trailer fields as more headers
    if mine != other:
        return f"headers {mine!r} != {other!r}"
    return None


def compare(name: str, ours: list[Parsed], theirs: list[Parsed], error: str | None, complete: bool,
            trailers_appended: bool = False) -> list[str]:
    """`complete`: gatehouse read every byte, so the library must too, without error."""
    problems = []
    if len(theirs) < len(ours):
        problems.append(f"{name}: {len(theirs)} messages, gatehouse {len(ours)} ({error})")
    elif complete and (error is not None or len(theirs) != len(ours)):
        problems.append(f"{name}: {len(theirs)} messages and {error}, gatehouse accepted {len(ours)}")
    for index, (mine, other) in enumerate(zip(ours, theirs)):
        difference = same(mine, other, len(mine.headers) if trailers_appended else None)
        if difference:
            problems.append(f"{name} message {index}: {difference}")
    return problems


# ---------------------------------------------------------------------------------------------
# The test


def test_gatehouse_accepts_only_what_h11_and_httptools_frame_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = generate()
    paths = []
    for index, data in enumerate(cases):
        path = tmp_path / f"{index:05d}"
        path.write_bytes(data)
        paths.append(path)

    output = subprocess.run([PROBE, *map(str, paths)], capture_output=True, check=True, timeout=120).stdout
    probe_lines = {}
    for line in output.decode("ascii").splitlines():
        result = json.loads(line)
        probe_lines[result["file"]] = result
    assert len(probe_lines) == len(cases), "the probe did not answer for every file"

    accepted = refused_by_gatehouse_only = refused_by_all = incomplete = compared_messages = extension_methods = 0
    refusal_reasons: dict[str, int] = {}
    failures = []
    for path, data in zip(paths, cases):
        result = probe_lines[str(path)]
        verdict = gatehouse_verdict(result, len(data))
        h11_messages, h11_error = run_h11(data)
        httptools_messages, httptools_error = run_httptools(data)
        if verdict.outcome in ("accepted", "closed"):
            accepted += 1
        elif verdict.outcome == "incomplete":
            incomplete += 1
        elif h11_error is None and httptools_error is None:
            refused_by_gatehouse_only += 1
            detail = result["error"]["detail"]
            refusal_reasons[detail] = refusal_reasons.get(detail, 0) + 1
        else:
            refused_by_all += 1

        # Every message gatehouse completed is one it accepted, also those before a refused or
        # incomplete one: the others must have framed each the same.
        ours = [to_parsed(message) for message in verdict.accepted]
        compared_messages += len(ours)
        # Did gatehouse's accepted messages cover every byte? Then the others must read no more.
        read_everything = bool(ours) and verdict.accepted[-1]["end"] == len(data)
        # h11 closes after any HTTP/1.0 message: compare it up to the first one.
        h11_count = next((i + 1 for i, m in enumerate(verdict.accepted) if m["version"] == "1.0"), len(ours))
        problems = compare("h11", ours[:h11_count], h11_messages, h11_error, read_everything and h11_count == len(ours))
        # llhttp stops at a method outside its list (a framing mutation can make one, e.g. a body
        # shorter than its Content-Length leaves "PTIONS"): compare it up to that message.
        httptools_count = next((i for i, m in enumerate(ours) if not llhttp_knows(m.method)), len(ours))
        if httptools_count < len(ours):
            extension_methods += 1
        problems += compare("httptools", ours[:httptools_count], httptools_messages, httptools_error,
                            read_everything and httptools_count == len(ours), trailers_appended=True)
        if problems:
            failures.append(f"case {path.name} {data[:300]!r}:\n    " + "\n    ".join(problems))

    summary = [f"\nHTTP1 differential: {len(cases)} generated, {accepted} accepted by gatehouse (and by h11 and "
          f"httptools alike; {compared_messages} messages compared), {refused_by_gatehouse_only} refused by "
          f"gatehouse but accepted by both others, {refused_by_all} refused by gatehouse and at least one other, "
          f"{incomplete} incomplete (gatehouse waits for more bytes); {extension_methods} compared with "
          f"httptools only up to an extension method llhttp does not know"]
    for reason, count in sorted(refusal_reasons.items(), key=lambda item: -item[1]):
        summary.append(f"    refused by gatehouse only: {count:4d}  {reason}")
    with capsys.disabled():  # shown under -q too: the numbers are the point
        print("\n".join(summary))

    assert not failures, f"{len(failures)} cases where gatehouse accepted and another parser disagreed:\n" + "\n".join(failures[:20])
    assert accepted >= MIN_ACCEPTED, f"only {accepted} accepted cases: the generator no longer exercises the parser"
    assert refused_by_all >= CASES // 10, "too few refused cases: the mutations no longer reach the rules"

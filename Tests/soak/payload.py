"""Deterministic bodies shared by the upstream (downloads) and the driver (uploads): `size`
bytes from `seed`, every 64 KiB chunk distinct (SHAKE-128 of seed and chunk number), so a lost,
repeated or reordered chunk changes the SHA-256."""

from __future__ import annotations

import functools
import hashlib
from typing import Iterator

CHUNK = 64 * 1024

# 32 log-spaced sizes from 1 KiB to 64 MiB, most of them not multiples of anything round, so
# chunk boundaries fall everywhere. Picking one uniformly gives a log-uniform size.
SIZES = sorted({max(1024, min(64 << 20, int(1024 * 65536 ** (k / 31)) - (k * 997) % 4093)) for k in range(32)})


def chunk(seed: int, index: int, length: int = CHUNK) -> bytes:
    """Chunk `index` of the stream for `seed` (its first `length` bytes: SHAKE is an XOF, so a
    shorter digest is a prefix of the longer one)."""
    return hashlib.shake_128(b"%d:%d" % (seed, index)).digest(length)


def chunks(seed: int, size: int) -> Iterator[bytes]:
    index, sent = 0, 0
    while sent < size:
        n = min(CHUNK, size - sent)
        yield chunk(seed, index, n)
        sent += n
        index += 1


@functools.lru_cache(maxsize=512)
def sha256_of(seed: int, size: int) -> str:
    digest = hashlib.sha256()
    for piece in chunks(seed, size):
        digest.update(piece)
    return digest.hexdigest()

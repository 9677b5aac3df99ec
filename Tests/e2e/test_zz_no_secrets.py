"""Runs last (file order): no token this suite used appears anywhere in any gatehouse output.

Every gatehouse process of the session — at every log level and format the tests chose, on
every outcome (accepted, rejected, malformed, oversized, sent by header, cookie or query) —
had its stdout and stderr kept. A token's signature segment is unique to it, and its payload
segment carries the claims: neither may show up in any line.
"""

from __future__ import annotations

import pytest

import tokens
from conftest import EVERY_GATEHOUSE


def test_no_token_used_by_the_suite_appears_in_any_gatehouse_output():
    minted = set(tokens.MINTED)
    if len(minted) < 20 or len(EVERY_GATEHOUSE) < 5:
        pytest.skip("meaningful only after the whole suite ran (run `make e2e`)")
    outputs = [(gh.name, gh.output()) for gh in EVERY_GATEHOUSE]
    leaks = []
    for token in minted:
        parts = token.split(".")
        needles = [p for p in parts[1:] if len(p) >= 16]  # payload and signature segments
        for name, output in outputs:
            for needle in needles:
                if needle in output:
                    leaks.append((name, needle[:12] + "…"))
    assert not leaks, f"token material in gatehouse output: {leaks[:10]}"
    print(f"checked {len(minted)} tokens against the output of {len(outputs)} gatehouse processes")

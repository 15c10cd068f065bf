"""Tokens are the contract's hex(HMAC-SHA256(key, field + ":" + normalized value))[:32], in bulk and one by one."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from graph.tokens import token, tokenize


@pytest.mark.parametrize("key", [b"k", b"posguard-test-key-not-a-secret", b"x" * 64, b"long key " * 20])
def test_bulk_tokens_equal_the_standard_hmac(key):
    values = ["4111 1111-1111 1111", "4000000000000002", None, "4111111111111111", "5500 0000 0000 0004"]
    expected = [None if v is None else
                hmac.new(key, ("pan:" + v.replace(" ", "").replace("-", "")).encode(), hashlib.sha256)
                .hexdigest()[:32] for v in values]
    assert list(tokenize(values, "pan", key)) == expected
    assert [token(v, "pan", key) for v in values if v] == [e for e in expected if e]
    assert tokenize(values, "pan", key)[0] == tokenize(values, "pan", key)[3]  # normalized before hashing
    assert tokenize(["x"], "phone", key)[0] != tokenize(["x"], "owner_id", key)[0]  # the field is in the message


def test_a_shared_cache_gives_the_same_tokens_and_hashes_each_value_once():
    key, cache = b"k", {}
    first = tokenize(["4111 1111 1111 1111", "4000000000000002"], "pan", key, cache)
    assert len(cache) == 2
    second = tokenize(["4000000000000002", "5500000000000004"], "pan", key, cache)
    assert len(cache) == 3
    assert list(second) == list(tokenize(["4000000000000002", "5500000000000004"], "pan", key))
    assert second[0] == first[1]

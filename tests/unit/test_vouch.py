"""The API's signature over the merchant and conversation a turn is for (core/vouch.py)."""

from __future__ import annotations

from core import vouch

SECRET = "internal-token-for-tests"


def test_what_the_api_signed_is_vouched_for():
    meta = vouch.metadata(SECRET, "M10001", 42)
    assert vouch.vouched(SECRET, meta) == ("M10001", 42)
    assert vouch.vouched(SECRET, vouch.metadata(SECRET, "M10001", None)) == ("M10001", None)


def test_written_forged_or_moved_ids_are_not():
    meta = vouch.metadata(SECRET, "M10001", 42)
    assert vouch.vouched(SECRET, {"merchant_id": "M10002"}) is None  # a caller of Rasa's webhook
    assert vouch.vouched(SECRET, {**meta, "merchant_id": "M10002"}) is None
    assert vouch.vouched(SECRET, {**meta, "conversation_id": 43}) is None
    assert vouch.vouched("another-secret", meta) is None
    assert vouch.vouched(SECRET, {**meta, "conversation_id": "42"}) is None
    assert vouch.vouched(SECRET, None) is None and vouch.vouched(SECRET, "M10001") is None

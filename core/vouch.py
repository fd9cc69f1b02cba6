"""The API vouches for who a turn is for: Rasa passes the message metadata through untouched, so the action
server acts for a merchant only when the metadata carries the API's signature over the merchant and the
conversation (HMAC-SHA256 with the internal token). A caller of Rasa's REST webhook on the same host cannot write
another merchant's id there."""

from __future__ import annotations

import hashlib
import hmac


def signature(secret: str, merchant_id: str, conversation_id: int | None) -> str:
    message = f"{merchant_id}|{conversation_id if conversation_id is not None else ''}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def metadata(secret: str, merchant_id: str, conversation_id: int | None) -> dict:
    """What the API sends along with a merchant's message."""
    return {"merchant_id": merchant_id, "conversation_id": conversation_id,
            "sig": signature(secret, merchant_id, conversation_id)}


def vouched(secret: str, meta: dict | None) -> tuple[str, int | None] | None:
    """(merchant id, conversation id) if the API signed them, else None."""
    meta = meta if isinstance(meta, dict) else {}
    merchant, conversation, sig = meta.get("merchant_id"), meta.get("conversation_id"), meta.get("sig")
    if not isinstance(merchant, str) or not merchant or not isinstance(sig, str):
        return None
    if conversation is not None and (not isinstance(conversation, int) or isinstance(conversation, bool)):
        return None
    if not hmac.compare_digest(sig, signature(secret, merchant, conversation)):
        return None
    return merchant, conversation

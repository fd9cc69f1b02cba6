"""Passwords and signed tokens.

Staff log in with a password and get a token signed with ``secret_key``.
Merchants never log in here: the merchant back office (the host site) signs a
short-lived token for its logged-in merchant with the shared ``widget_secret``
(HS256 JWT, claims ``sub`` = merchant code, ``exp``) and hands it to the widget.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError

_hasher = PasswordHasher()
ALGORITHM = "HS256"


class TokenError(ValueError):
    """A token that is missing, forged, expired or malformed; the message is for people."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return False


def _encode(claims: dict, secret: str, minutes: int) -> str:
    now = datetime.now(UTC)
    return jwt.encode({**claims, "iat": now, "exp": now + timedelta(minutes=minutes)}, secret, ALGORITHM)


def _decode(token: str, secret: str) -> dict:
    try:
        return jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError:
        raise TokenError("登录已过期，请重新登录") from None
    except jwt.PyJWTError:
        raise TokenError("身份凭证无效") from None


def create_staff_token(user_id: int, role: str, secret: str, minutes: int) -> str:
    return _encode({"sub": str(user_id), "role": role, "kind": "staff"}, secret, minutes)


def create_merchant_token(merchant_code: str, secret: str, minutes: int = 30) -> str:
    """What the host site does for its logged-in merchant (also used by the demo page and tests)."""
    return _encode({"sub": merchant_code, "kind": "merchant"}, secret, minutes)


def read_staff_token(token: str, secret: str) -> tuple[int, str]:
    claims = _decode(token, secret)
    if claims.get("kind") != "staff":
        raise TokenError("身份凭证无效")
    try:
        return int(claims["sub"]), str(claims.get("role", ""))
    except ValueError:
        raise TokenError("身份凭证无效") from None


def read_merchant_token(token: str, secret: str, max_minutes: int) -> str:
    claims = _decode(token, secret)
    if claims.get("kind", "merchant") != "merchant":
        raise TokenError("身份凭证无效")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int | float) or isinstance(iat, bool) or not isinstance(exp, int | float):
        raise TokenError("身份凭证缺少签发时间（iat），请由业务系统重新签发")
    if exp - iat > max_minutes * 60:  # without iat this cap could not be checked: iat is required
        raise TokenError("身份凭证有效期过长，请由业务系统重新签发")
    return str(claims["sub"])

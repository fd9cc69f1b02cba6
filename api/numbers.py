"""Numbers merchants type: 工单 GD…, 申诉 SS…, 判罚 CF…"""

from __future__ import annotations

import re
import secrets
import unicodedata
from datetime import UTC, datetime

CASE, APPEAL, PENALTY = "GD", "SS", "CF"
# ASCII digits only (NFKC has folded full-width ones); a run of more than 20 digits is no number of ours
_PATTERN = re.compile(r"^(GD|SS|CF)(\d{6,20})$", re.ASCII)
_IN_TEXT = re.compile(r"(GD|SS|CF)\s*-?\s*(\d{6,20})(?!\d)", re.IGNORECASE | re.ASCII)
KIND_NAMES = {CASE: "工单号", APPEAL: "申诉单号", PENALTY: "判罚单号"}


def new_number(prefix: str) -> str:
    """Prefix + date + 6 random digits, e.g. GD261125004217."""
    return f"{prefix}{datetime.now(UTC):%y%m%d}{secrets.randbelow(10**6):06d}"


def canonical(raw: str) -> str:
    """Full width → half width, spaces and dashes dropped, upper case."""
    text = unicodedata.normalize("NFKC", raw or "")
    return re.sub(r"[\s\-_]", "", text).upper()


def parse(raw: str, expected: str) -> str | None:
    """The canonical number if ``raw`` is a well-formed number of the ``expected`` kind, else None."""
    number = canonical(raw)
    match = _PATTERN.match(number)
    return number if match and match.group(1) == expected else None


def find_in_text(text: str) -> list[str]:
    """Every case/appeal/penalty number mentioned in a message."""
    return [m.group(1).upper() + m.group(2) for m in _IN_TEXT.finditer(unicodedata.normalize("NFKC", text or ""))]

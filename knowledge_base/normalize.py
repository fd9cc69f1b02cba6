"""Text normalisation shared by indexing and querying.

NFKC folds full-width forms to half width, traditional characters become
simplified, Latin letters lower case; punctuation, emoji and control characters
become spaces; the knowledge team's synonym table rewrites colloquial words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache

NORMALIZE_VERSION = 2  # bump when normalize() changes what it returns: saved indexes are rebuilt
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=1)
def _t2s():
    from opencc import OpenCC

    return OpenCC("t2s")


def _keep(ch: str) -> bool:
    """Letters, digits and CJK stay; everything else (punctuation, symbols, emoji, controls) goes."""
    cat = unicodedata.category(ch)
    return cat[0] in ("L", "N") or ch == " "


def to_simplified(text: str) -> str:
    return _t2s().convert(text)


def normalize(text: str, synonyms: Mapping[str, str] | None = None, max_chars: int = 512) -> str:
    """The canonical form of ``text`` for matching; empty when nothing meaningful is left."""
    if not text:
        return ""
    # lower case before the filter: lowering can leave a mark the filter drops (İ → i + U+0307), so a second
    # pass would change the text; NFKC again, as lowering can undo its forms
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text[: max_chars * 2]).lower())
    text = "".join(ch if _keep(ch) else " " for ch in text)
    text = _SPACES.sub(" ", text).strip()
    if not text:
        return ""
    text = to_simplified(text)[:max_chars].rstrip()  # the cut may end on a space
    if synonyms:
        text = apply_synonyms(text, synonyms)
    return text


def apply_synonyms(text: str, synonyms: Mapping[str, str]) -> str:
    """Replace each colloquial term by its canonical word, longest terms first."""
    for term in sorted(synonyms, key=len, reverse=True):
        if term and term in text:
            text = text.replace(term, synonyms[term])
    return text

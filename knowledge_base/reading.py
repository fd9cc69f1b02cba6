"""What the retriever learns from the knowledge base's own phrasings to read a question: the pinyin reader
(``pinyin``: 「bzj zenme tui」 → 保证金怎么退, English merchant terms → the KB's words) and the direction book
(``direction``: 我被投诉 / 我要投诉).

Each is built from the index when first needed (the reader ~0.45 s for the seed KB, the book ~0.3 s: the first
question of a process that needs one waits for it once; ``warm`` builds both in the background) and, once built, rebuilt in the background when a
question needs it after the index has changed; meanwhile the previous one serves, so no search waits for a
rebuild after an edit, and edits cost nothing until a question needs the part they touch (most questions have
no latin letters and no direction cue).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from .direction import DirectionBook, query_direction
from .index import FaqIndex, Hit
from .pinyin import PinyinReader, english_to_mixed

log = logging.getLogger(__name__)
_LATIN = re.compile(r"[a-z]")
_HAN = re.compile(r"[\u4e00-\u9fff]")
T = TypeVar("T")


def reads_as_english(text: str) -> bool:
    """Mostly latin letters and no Chinese: an English question (or pinyin, which the reader tries first)."""
    return not _HAN.search(text) and len(_LATIN.findall(text)) >= 0.5 * len(text.replace(" ", ""))


class _FromIndex(Generic[T]):
    """One thing built from the index's phrasings, kept with the index revision it was built from."""

    def __init__(self, index: FaqIndex, build: Callable[[dict[int, list[str]]], T], name: str):
        self.index, self._build_from, self.name = index, build, name
        self._built: tuple[int, T] | None = None
        self._lock = threading.Lock()
        self._rebuilding = False

    @property
    def revision(self) -> int | None:
        built = self._built
        return built[0] if built else None

    def _build(self) -> T:
        revision, faqs = self.index.phrasings()
        value = self._build_from(faqs)
        with self._lock:
            if self._built is None or self._built[0] < revision:
                self._built = (revision, value)
        return value

    def build_later(self) -> None:
        with self._lock:
            if self._rebuilding:
                return
            self._rebuilding = True

        def run() -> None:
            try:
                self._build()
            except Exception:  # the old one keeps serving; the next question that needs it tries again
                log.exception("could not rebuild the %s", self.name)
            finally:
                with self._lock:
                    self._rebuilding = False

        threading.Thread(target=run, name=f"kb-{self.name}", daemon=True).start()

    def get(self) -> T:
        built = self._built
        if built is None:
            return self._build()
        if built[0] != self.index.revision:
            self.build_later()
        return built[1]


class QueryReading:
    def __init__(self, index: FaqIndex):
        self.index = index
        self.pinyin = _FromIndex(index, lambda faqs: PinyinReader.from_texts(t for ts in faqs.values() for t in ts),
                                 "pinyin reader")
        self.directions = _FromIndex(index, DirectionBook.from_faqs, "direction book")

    def warm(self) -> None:
        """Build both in the background, so no question waits for them (benchmarks call it before timing)."""
        self.pinyin.build_later()
        self.directions.build_later()

    def rewrite(self, normalized: str) -> str:
        """The question as the KB writes it: pinyin runs in Chinese, an English question's merchant terms in
        the KB's words; unchanged when neither applies."""
        if not normalized or not _LATIN.search(normalized):
            return normalized
        rewritten = self.pinyin.get().to_hanzi(normalized)
        if rewritten is None and reads_as_english(normalized):
            rewritten = english_to_mixed(normalized)
        return rewritten or normalized

    def adjust(self, normalized: str, hits: list[Hit]) -> list[Hit]:
        """``hits`` with each FAQ that points against the question (who complained about whom…) lowered."""
        if not hits or not query_direction(normalized):
            return hits
        return self.directions.get().adjust(normalized, hits)

"""What the retriever learns from the knowledge base's own phrasings to read a question: the pinyin reader
(``pinyin``: 「bzj zenme tui」 → 保证金怎么退, English merchant terms → the KB's words) and the direction book
(``direction``: 我被投诉 / 我要投诉). Both are built from the index (about 0.5 s for the seed KB) and rebuilt in
the background after the index changes; meanwhile the previous ones serve, so no search waits for a rebuild
after an edit (only the very first search of an index builds them in line).
"""

from __future__ import annotations

import logging
import re
import threading

from .direction import DirectionBook
from .index import FaqIndex, Hit
from .pinyin import PinyinReader, english_to_mixed

log = logging.getLogger(__name__)
_LATIN = re.compile(r"[a-z]")
_HAN = re.compile(r"[\u4e00-\u9fff]")


def reads_as_english(text: str) -> bool:
    """Mostly latin letters and no Chinese: an English question (or pinyin, which the reader tries first)."""
    return not _HAN.search(text) and len(_LATIN.findall(text)) >= 0.5 * len(text.replace(" ", ""))


class QueryReading:
    def __init__(self, index: FaqIndex):
        self.index = index
        self._built: tuple[int, PinyinReader, DirectionBook] | None = None
        self._lock = threading.Lock()
        self._rebuilding = False

    def _build(self) -> tuple[int, PinyinReader, DirectionBook]:
        revision, faqs = self.index.phrasings()
        built = (revision, PinyinReader.from_texts(t for texts in faqs.values() for t in texts),
                 DirectionBook.from_faqs(faqs))
        with self._lock:
            if self._built is None or self._built[0] < revision:
                self._built = built
        return built

    def _rebuild_later(self) -> None:
        with self._lock:
            if self._rebuilding:
                return
            self._rebuilding = True

        def run() -> None:
            try:
                self._build()
            except Exception:  # the old readers keep serving; the next search tries again
                log.exception("could not rebuild the pinyin reader and direction book")
            finally:
                with self._lock:
                    self._rebuilding = False

        threading.Thread(target=run, name="kb-readers", daemon=True).start()

    def _current(self) -> tuple[int, PinyinReader, DirectionBook]:
        built = self._built
        if built is None:
            return self._build()
        if built[0] != self.index.revision:
            self._rebuild_later()
        return built

    def warm(self) -> None:
        """Build now (after loading an index), so the first merchant's search does not."""
        self._current()

    def rewrite(self, normalized: str) -> str:
        """The question as the KB writes it: pinyin runs in Chinese, an English question's merchant terms in
        the KB's words; unchanged when neither applies."""
        if not normalized or not _LATIN.search(normalized):
            return normalized
        _, reader, _ = self._current()
        rewritten = reader.to_hanzi(normalized)
        if rewritten is None and reads_as_english(normalized):
            rewritten = english_to_mixed(normalized)
        return rewritten or normalized

    def adjust(self, normalized: str, hits: list[Hit]) -> list[Hit]:
        """``hits`` with each FAQ that points against the question (who complained about whom…) lowered."""
        if not hits:
            return hits
        _, _, book = self._current()
        return book.adjust(normalized, hits)

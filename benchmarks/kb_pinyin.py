"""Questions typed in pinyin or in English: the retriever reading them as typed, and as it reads them now.

Run: ``.venv/app/bin/python -m benchmarks.kb_pinyin`` (about 2 minutes on 2 cores: most of it is embedding the
seed KB's 6,323 phrasings once).

The product's retriever over the seed KB, in process (``kb_common.e5_retriever``: the served, unmodified model
var/models/multilingual-e5-small, seed synonyms, the thresholds of data/kb_thresholds.json), asked the questions
of benchmarks/data/pinyin_english.yml. "As typed" is that retriever with ``kc.PlainReading`` for its
``reading`` (no rewrite, no direction adjustment: the retriever before ``knowledge_base.reading``), on a
retriever object of its own over the same index; the other columns are the product retriever as it is, its own
``QueryReading`` doing the reading (``Retriever.search`` rewrites, then adjusts for direction):

- pinyin questions (full, unspaced, initials, mixed with Chinese) as typed, then as the retriever reads them:
  their pinyin read back into the KB's characters (``PinyinReader.to_hanzi`` on the normalised text);
- English questions as typed, then as the retriever reads them: the merchant terms swapped for the KB's Chinese
  words (``english_to_mixed``, the other English words kept), and, for comparison, the glossary's other mode
  (only the Chinese terms, ``keep_english=False``) searched with the product retriever.

For each: the share answered with the right FAQ, clarified with the right FAQ among the choices (the top 3),
answered wrongly, clarified without the right FAQ, not answered. Also: the reader's build time over the KB's
normalised phrasings, its time per call, and what it does to the Chinese held-out and out-of-scope questions
(it should leave them alone). Writes benchmarks/results/kb_pinyin.md.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections import Counter

import yaml

from core.settings import REPO_ROOT
from knowledge_base import Retriever
from knowledge_base.pinyin import PinyinReader, _dictionaries, english_to_mixed

from . import kb_common as kc
from .kb_eval import load_heldout, load_questions

DATA = REPO_ROOT / "benchmarks" / "data" / "pinyin_english.yml"
HELDOUT = REPO_ROOT / "benchmarks" / "data" / "heldout"
OOS = REPO_ROOT / "benchmarks" / "data" / "out_of_scope.yml"
OUTCOMES = [("right", "answered, right FAQ"), ("offered", "clarified, right FAQ offered"),
            ("wrong", "**answered, wrong FAQ**"), ("missed", "clarified, right FAQ not offered"),
            ("none", "no answer")]


def outcome(result, gold: int, choices: int) -> str:
    top = [h.faq_id for h in result.hits]
    if result.decision.value == "answer":
        return "right" if top and top[0] == gold else "wrong"
    if result.decision.value == "clarify":
        return "offered" if gold in top[:choices] else "missed"
    return "none"


def rows_for(name: str, outcomes: list[str]) -> list:
    counts = Counter(outcomes)
    n = max(len(outcomes), 1)
    first_reply = (counts["right"] + counts["offered"]) / n
    return [name, len(outcomes), *(counts[k] / n for k, _ in OUTCOMES), first_reply]


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return "?"
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "?")


def main() -> int:
    faqs = kc.seed_faqs()
    key_to_id = {f["key"]: i for i, f in enumerate(faqs)}
    data = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    pinyin_set = [(str(r["q"]), key_to_id[r["gold"]], r.get("form", ""), r.get("batch", "dev"))
                  for r in data["pinyin"]]
    english_set = [(str(r["q"]), key_to_id[r["gold"]], r.get("batch", "dev")) for r in data["english"]]
    synonyms = kc.seed_synonyms()
    texts, _ = kc.indexed_phrasings(faqs, synonyms)

    started = time.perf_counter()
    _dictionaries()
    load_s = time.perf_counter() - started
    builds = []
    for _ in range(5):
        started = time.perf_counter()
        reader = PinyinReader.from_texts(texts)
        builds.append(time.perf_counter() - started)

    print(f"embedding the seed KB ({len(texts)} phrasings)…", file=sys.stderr)
    retriever = kc.e5_retriever(kc.load_embedder(), faqs)  # the product's, with its own reading
    retriever.reading.warm()
    plain = Retriever(retriever.embedder, retriever.index, retriever.thresholds, synonyms=retriever.synonyms)
    plain.reading = kc.PlainReading()  # the same retriever reading questions as typed
    choices = retriever.thresholds.clarify_choices
    kb_texts = set(texts)

    # pinyin: as typed, as the retriever reads them
    fresh = PinyinReader.from_texts(texts)  # cold caches for the timing
    detail_rows, by_form, by_batch = [], {}, {}
    call_ms, read_as_reader = [], 0
    for q, gold, form, batch in pinyin_set:
        normalized = retriever.prepare(q)
        started = time.perf_counter()
        hanzi = fresh.to_hanzi(normalized)
        call_ms.append((time.perf_counter() - started) * 1000)
        read = retriever.search(q)
        read_as_reader += read.normalized == (hanzi or normalized)
        a = outcome(plain.search(q), gold, choices)
        b = outcome(read, gold, choices)
        for group in (by_form.setdefault(form, ([], [])), by_batch.setdefault(batch, ([], []))):
            group[0].append(a)
            group[1].append(b)
        detail_rows.append([batch, form, q, read.normalized if read.normalized != normalized else "—",
                            faqs[gold]["key"], a, b])

    # English: as typed, as the retriever reads them (glossary, English kept), the glossary's Chinese terms only
    english_rows, e_reader, e_batch = [], [], {}
    read_as_glossary = chinese_reread = 0
    for q, gold, batch in english_set:
        normalized = retriever.prepare(q)
        chinese = english_to_mixed(normalized, keep_english=False)
        read = retriever.search(q)
        read_as_glossary += read.normalized == (english_to_mixed(normalized) or normalized)
        if chinese:
            chinese_reread += retriever.read(chinese) != plain.read(chinese)  # the reading should leave it alone
        a = outcome(plain.search(q), gold, choices)
        b = outcome(read, gold, choices)
        c = outcome(retriever.search(chinese or q), gold, choices)
        for column, value in zip(e_batch.setdefault(batch, ([], [], [])), (a, b, c)):
            column.append(value)
        e_reader.append(reader.to_hanzi(normalized))
        english_rows.append([batch, q, read.normalized if read.normalized != normalized else "—", chinese or "—",
                             faqs[gold]["key"], a, b, c])

    # Chinese questions: does the reader leave them alone?
    heldout, _ = load_heldout(HELDOUT, key_to_id)
    oos = load_questions(OOS)
    touched = []
    chinese_ms, reader_touched = [], 0
    for q in [h.text for h in heldout] + oos:
        normalized = retriever.prepare(q)
        started = time.perf_counter()
        out = reader.to_hanzi(normalized)
        chinese_ms.append((time.perf_counter() - started) * 1000)
        reader_touched += out is not None
        if retriever.read(q) != normalized:
            before, after = plain.search(q), retriever.search(q)
            touched.append([q, after.normalized, before.decision.value, after.decision.value,
                            faqs[before.hits[0].faq_id]["key"] if before.hits else "—",
                            faqs[after.hits[0].faq_id]["key"] if after.hits else "—"])

    headers = ["set", "n", *(label for _, label in OUTCOMES), "**right FAQ in the first reply**"]
    main_rows = []
    for batch in ("dev", "fresh"):
        if batch in by_batch:
            main_rows += [rows_for(f"pinyin {batch}, as typed", by_batch[batch][0]),
                          rows_for(f"pinyin {batch}, read by the retriever (PinyinReader)", by_batch[batch][1])]
    for form in ("full", "unspaced", "initials", "mixed"):
        if form in by_form:
            main_rows += [rows_for(f"— {form} (both batches), as typed", by_form[form][0]),
                          rows_for(f"— {form} (both batches), read by the retriever", by_form[form][1])]
    for batch in ("dev", "fresh"):
        if batch in e_batch:
            main_rows += [rows_for(f"English {batch}, as typed", e_batch[batch][0]),
                          rows_for(f"English {batch}, read by the retriever (glossary, other English words kept)",
                                   e_batch[batch][1]),
                          rows_for(f"English {batch}, glossary (only the Chinese terms)", e_batch[batch][2])]
    in_kb = sum(retriever.prepare(q) in kb_texts for q, *_ in pinyin_set + english_set)
    t = retriever.thresholds
    notes = [
        f"`lscpu` Model name: {cpu_model()}",
        f"KB: {len(faqs)} seed FAQs, {len(texts)} distinct normalised phrasings; model {retriever.embedder.name}; "
        f"thresholds answer ≥ {t.answer} with a lead ≥ {t.margin}, clarify ≥ {t.clarify} ({choices} choices), "
        f"lexical weight {t.lexical}.",
        f"Questions: benchmarks/data/pinyin_english.yml, {len(pinyin_set)} pinyin, {len(english_set)} English "
        f"({in_kb} equal a KB phrasing after normalisation).",
        f"PinyinReader.from_texts over the {len(texts)} phrasings: median {statistics.median(builds) * 1000:.0f} ms "
        f"(min {min(builds) * 1000:.0f}, max {max(builds) * 1000:.0f}, 5 builds), plus {load_s * 1000:.0f} ms "
        "once per process to load pypinyin's dictionaries.",
        f"to_hanzi per call, fresh reader: pinyin questions mean {statistics.mean(call_ms):.2f} ms, max "
        f"{max(call_ms):.2f} ms; the {len(chinese_ms)} Chinese held-out and out-of-scope questions mean "
        f"{statistics.mean(chinese_ms):.3f} ms.",
        f"The retriever's reading changed {len(touched)} of the {len(chinese_ms)} Chinese questions (to_hanzi "
        f"alone: {reader_touched}); the pinyin reader took {sum(x is not None for x in e_reader)} of the "
        f"{len(english_set)} English ones.",
        "\"As typed\": the retriever with `kc.PlainReading` as its reading (no rewrite, no direction adjustment); "
        "\"read by the retriever\": the product retriever's own search (`QueryReading.rewrite`, then `adjust`). "
        f"It read {read_as_reader} of the {len(pinyin_set)} pinyin questions as a fresh reader's to_hanzi does and "
        f"{read_as_glossary} of the {len(english_set)} English ones as english_to_mixed does; \"only the Chinese "
        "terms\" searches english_to_mixed(…, keep_english=False) with the product retriever, whose reading "
        f"rewrote {chinese_reread} of those texts again.",
        "Outcomes add up to 1 per row; \"right FAQ in the first reply\" = answered right + clarified with the right "
        "FAQ offered.",
        "Batches: dev questions were written first, and the reader's settings and the English glossary were adjusted "
        "while looking at them; fresh questions were written after the code was frozen and never used to change "
        "it: their rows are the honest estimate.",
    ]
    report = (kc.header("Pinyin and English questions: as typed, and read back into Chinese", notes) + "\n"
              + kc.table(headers, main_rows)
              + "\n## Pinyin questions one by one\n\n"
              + kc.table(["batch", "form", "question", "read as", "gold", "as typed", "read by the retriever"],
                         detail_rows)
              + "\n## English questions one by one\n\n"
              + kc.table(["batch", "question", "read as (glossary, English kept)", "glossary, Chinese only", "gold",
                          "as typed", "read by the retriever", "Chinese only"], english_rows))
    if touched:
        report += ("\n## Chinese questions the retriever's reading rewrote\n\n"
                   + kc.table(["question", "read as", "decision as typed", "read", "top FAQ as typed", "read"],
                              touched))
    print(kc.table(headers, main_rows))
    print("wrote", kc.write_result("kb_pinyin.md", report).relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())

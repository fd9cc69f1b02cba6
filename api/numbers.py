"""Numbers merchants type: 工单 GD…, 申诉 SS…, 判罚 CF…"""

from __future__ import annotations

import re
import secrets
import unicodedata
from datetime import UTC, datetime

CASE, APPEAL, PENALTY = "GD", "SS", "CF"
# ASCII digits only (NFKC has folded full-width ones); a run of more than 20 digits is no number of ours
_PATTERN = re.compile(r"^(GD|SS|CF)(\d{6,20})$", re.ASCII)
# After the digits no further digit or latin letter: GD26112500421X is a mistyped number, not GD26112500421.
# bot/data/nlu_entities.yml has the same shape (separator, 6-20 digits, what may not follow) for the NLU.
_IN_TEXT = re.compile(r"(GD|SS|CF)\s*[-_]?\s*([0-9]{6,20})(?![0-9A-Za-z])", re.IGNORECASE | re.ASCII)
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


# --------------------------------------------------------------------------- attempted numbers of the wrong shape
# What merchants type when they mean one of our numbers but get it wrong: GD12345, GD2611250042171234567890,
# GD26112500421X, SS-12, GB261125004217, a bare 261125004217, 工单号是 2611. Ordinary numbers in a question
# (保证金交了2000元, 3月15号发的货, 电话13800138000换了, 订单号 3912…, SF 快递单号) are not attempts.

# Two latin letters (not part of a longer word) right before digits; the digits may run on into letters (…421X).
_LETTERS_THEN_DIGITS = re.compile(r"(?<![A-Za-z])([A-Za-z]{2})\s*[-_]?\s*([0-9]+)([0-9A-Za-z]*)", re.ASCII)
# GD 2611 2500 4217, SS2611-160001: a number copied in groups (read as one attempt, not as "GD 2611")
_GROUPS = re.compile(r"(?:[ \-_][0-9]+)+(?![0-9A-Za-z])", re.ASCII)
_PREFIXES = (CASE, APPEAL, PENALTY)
# Codes merchants also type that share a letter with ours: couriers (顺丰 SF, 京东 JD, 韵达 YD, 申通 ST),
# 食品生产许可 SC, serial numbers SN, shop/user IDs, CN patents and parcels.
_NOT_OURS = {"SF", "JD", "YD", "ST", "SC", "SN", "ID", "CN"}
_NEAR_MISS_MIN_DIGITS = 8  # GB261125004217 is an attempt; GB31701 (a national standard) is not
# 工单号 / 申诉单号 / 判罚单号 / 罚单号, or 单号 on its own (not 订单号, 快递单号, 运单号…): then 4 or more digits.
_NAMED = re.compile(r"(?:(?:工单|申诉单?|判罚单?|处罚单?|罚单)号|(?<![^\W我的个这那查该此你您])单号)码?"
                    r"[\s:：#是为]*([0-9]+)([0-9A-Za-z]*)")
_NAMED_MIN_DIGITS = 4  # 工单号是 2611 is an attempt; 工单号是12位吗 is a question
# 工单 / 申诉 / 判罚 without 号: only a run as long as a number's digits (申诉3次, 判罚2000元 are not attempts).
_KIND_WORD = re.compile(r"(?:工单|申诉单?|判罚单?|处罚单?)[\s:：#是为]*([0-9]{10,14})(?![0-9A-Za-z])")
# A run of 10-14 digits standing alone (261125004217, 查进度 261125004217) is a number without its prefix,
# unless it is a mobile phone number, an amount, or named as something else just before it.
_BARE = re.compile(r"(?<![0-9A-Za-z])([0-9]{10,14})(?![0-9A-Za-z])")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_UNITS = frozenset("元块角分万亿千百%％位个件次天号年月日")  # after a run of digits: an amount, a count, a date
_OTHER_NUMBERS = ("订单", "快递", "物流", "运单", "包裹", "电话", "手机", "联系", "卡号", "账号", "帐号", "银行",
                  "QQ", "微信", "支付宝", "身份证", "税号", "发票", "条码", "货号", "编码", "ID", "￥", "¥", "$")
_EXAMPLE_DIGITS = "261125004217"


def _fold(text: str) -> str:
    """NFKC character by character (full-width letters and digits → ASCII), keeping every position."""
    out = []
    for ch in text:
        folded = unicodedata.normalize("NFKC", ch)
        out.append(folded if len(folded) == 1 else ch)
    return "".join(out)


def _near_miss(pair: str) -> bool:
    """One letter of a prefix in its place (GB, GS, SD, CD, XF…), or a prefix the wrong way round (DG, FC)."""
    if pair in _NOT_OURS:
        return False
    return any((pair[0] == p[0]) != (pair[1] == p[1]) or pair == p[::-1] for p in _PREFIXES)


def find_malformed(text: str) -> list[str]:
    """What in ``text`` looks like an attempt at a case/appeal/penalty number but is not one ``find_in_text``
    finds: the tokens as the merchant typed them, in order. Well-formed numbers are not returned, whether or not
    they exist."""
    original = text or ""
    folded = _fold(original)
    spans: list[tuple[int, int]] = []
    well_formed: list[tuple[int, int]] = []  # their spans are taken: the digits of GD261125004217 are not bare

    def keep(start: int, end: int) -> None:
        if not any(s < end and start < e for s, e in spans):
            spans.append((start, end))

    for m in _LETTERS_THEN_DIGITS.finditer(folded):
        pair, digits, tail = m.group(1).upper(), m.group(2), m.group(3)
        if pair in _PREFIXES:
            if tail or not 6 <= len(digits) <= 20:
                groups = None if tail or len(digits) > 20 else _GROUPS.match(folded, m.end())
                grouped = (groups and 6 <= len(digits) + sum(c.isdigit() for c in groups.group()) <= 20
                           and folded[groups.end():groups.end() + 1] not in _UNITS)
                keep(m.start(), groups.end() if grouped else m.end())
            else:
                well_formed.append((m.start(), m.end()))
                spans.append((m.start(), m.end()))
        elif _near_miss(pair) and len(digits) >= _NEAR_MISS_MIN_DIGITS:
            keep(m.start(), m.end())
    for m in _NAMED.finditer(folded):
        if len(m.group(1)) >= _NAMED_MIN_DIGITS:
            keep(m.start(1), m.end(2))
    for m in _KIND_WORD.finditer(folded):
        keep(m.start(1), m.end(1))
    for m in _BARE.finditer(folded):
        digits, before = m.group(1), folded[max(0, m.start() - 8):m.start()].upper()
        if _MOBILE.fullmatch(digits) or folded[m.end():m.end() + 1] in _UNITS:
            continue
        if any(word.upper() in before for word in _OTHER_NUMBERS):
            continue
        keep(m.start(1), m.end(1))
    found = sorted(span for span in spans if span not in well_formed)
    return [original[s:e].strip() for s, e in found]


def problem(raw: str) -> str:
    """What is wrong with a token ``find_malformed`` returned, in a few words for the merchant."""
    number = canonical(raw)
    m = re.match(r"([A-Z]*)([0-9]*)(.*)", number, re.ASCII)
    letters, digits, rest = m.group(1), m.group(2), m.group(3)
    if not letters:
        return "前面少了 GD、SS 或 CF"
    if letters not in _PREFIXES:
        return f"开头的 {letters} 不对"
    if parse(number, letters) and re.search(r"[0-9][\s\-_]+[0-9]", unicodedata.normalize("NFKC", raw)):
        return "数字中间不要加空格或横线"
    if rest:
        return f"数字里混进了“{rest}”"
    if len(digits) < 6:
        return f"只有 {len(digits)} 位数字"
    return f"有 {len(digits)} 位数字，太长了"


def format_hint(expected: str = CASE) -> str:
    """How our numbers look, the kind the merchant is asked for first."""
    others = "，".join(f"{KIND_NAMES[p]}以 {p} 开头" for p in _PREFIXES if p != expected)
    return f"{KIND_NAMES[expected]}是 {expected} 加 12 位数字（例如 {expected}{_EXAMPLE_DIGITS}），{others}。"


def malformed_reply(tokens: list[str], expected: str = CASE, choose: bool = True) -> str:
    """The reply to a message with numbers of the wrong shape; ``choose``: the merchant's items follow as buttons."""
    named = "、".join(f"“{t}”（{problem(t)}）" for t in tokens[:3])
    tail = "，或者从下面选一个：" if choose else "。"
    return f"没有找到{named}：{format_hint(expected)}请核对后再发一次{tail}"

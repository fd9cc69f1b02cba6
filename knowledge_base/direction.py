"""Which way a question points: who complained about whom, which way money or a parcel goes.

Sibling FAQs share their words and differ only in direction: 有人投诉我侵权 (ip-counter-notice) and 我要投诉别人
侵权 (ip-file-complaint); 保证金怎么退 (money back to me) and 买家申请退款 (money to a buyer); 保证金被扣 and
补缴保证金; 被判刷单 and 被同行恶意拍单; 退货没收到 and 买家没收到货; 平台的服务费发票 and 买家要发票. An
embedding scores such pairs almost alike, so the wrong side often wins by a hair.

``query_direction`` reads a question's direction per topic from short regex cues (precision over recall: a
topic with cues for both sides, or none, is left out). ``DirectionBook`` gives each FAQ a direction per topic
by a clear majority of its phrasings' cues, and ``adjust`` lowers by ``PENALTY`` the score of each hit whose
FAQ points the other way from the question, then re-sorts. ``PENALTY`` was chosen on the KB's own phrasings,
leave-one-out (benchmarks/kb_direction.py, "penalty"), never on the direction test set.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace

from .index import Hit
from .normalize import normalize

PENALTY = 0.02    # score taken off an FAQ that points against the question (see the module docstring)
MIN_CUES = 2      # an FAQ needs this many phrasings with a cue on a topic to get a direction on it
MIN_SHARE = 0.6   # ... and this share of them on one side

G = r"[^\s,，。．.!！?？;；:：、]"  # one character of the same clause
A = r"[^\s,，。．.!！?？;；:：、了怎么能吗要想盗抄仿搬扒]"  # one character of an agent (被同行…, 买家…)
BUYER = r"(?:买家|顾客|客户|客人|消费者)"
PERSON = r"(?:买家|顾客|客户|客人|消费者|他|她|对方)"
DEPOSIT = r"(?:保证金|押金|押款|押的钱|押着的钱|bzj)"
OTHER = r"的?(?:店|店铺|店家|方|商家|人|链接|那家)"  # 被投诉的店: the other party
ACCUSE = r"(?:投诉|举报|起诉|(?<![广报通预警公])告(?![知诉]))"  # 告, not 广告/报告/告知/告诉


def _any(*patterns: str) -> re.Pattern:
    return re.compile("|".join(f"(?:{p})" for p in patterns))


# topic -> (side read first, its cues), (other side, its cues). The first side's matches are blanked out before
# the second side is read, so 被投诉侵权 is not also read as 投诉侵权, nor 说我刷单 as 同行…刷单.
TOPICS: dict[str, tuple[tuple[str, re.Pattern], tuple[str, re.Pattern]]] = {
    "complaint": (
        ("received", _any(
            rf"被{A}{{0,6}}{ACCUSE}(?!{OTHER})",  # not 被投诉的店 (the other shop)
            rf"被{A}{{0,4}}(?:说|说成|指|判|判定|认定|当成){G}{{0,4}}(?:侵权|侵犯|盗图|盗用|抄袭)",
            rf"(?<![去就要会])(?<!天天){ACCUSE}了?我(?!{G}{{0,2}}(?:要|想|去|能|可以|该|准备))",  # not threats (就去投诉我)
            rf"说我{G}{{0,4}}(?:侵权|侵犯|盗|抄)",
            rf"(?:收到|接到){G}{{0,6}}(?:投诉|举报)(?!{OTHER})",
            rf"(?:{BUYER}|品牌方|权利人|同行|对方|打假人){A}{{0,3}}(?:投诉|举报|起诉)",
            r"(?<!是)投诉(?:方|人)",  # the one who complained (about me); not 我是投诉人
            rf"针对我{G}{{0,3}}(?:投诉|举报)",
            rf"(?:用了|盗用了?|抄了|搬了){G}{{0,3}}(?:别人|别家|他人|网上|别的){G}{{0,6}}"
            r"(?:图|照片|素材|商标|品牌|牌子|logo|设计|文案|视频|作品)",
        )),
        ("filed", _any(
            r"我们?(?:要|想|准备|打算|去|得|能|可以|该|怎么|如何|这边|自己)?(?:投诉|举报|起诉|维权|告(?![知诉]))",
            rf"我们?的{G}{{0,4}}(?:投诉|举报)",
            r"(?:能|可以|怎么|如何|去|要|想)举报",
            rf"{ACCUSE}(?:别人|别家|他人|他们|他|她|对方|同行|对家|对手|竞争对手|那家|这家|那些|这些|这个|那个|仿|假|山寨|"
            r"盗|抄|侵权的?(?:链接|店|商品)|买家|顾客|投诉方|投诉人|骂人|骚扰|不实|评价|差评|这条)",
            rf"(?:发起|提交|提起){G}{{0,6}}(?:投诉|举报|维权)",
            rf"(?:别人|别家|有人|有店|有家店|同行|对方|对家|他们|竞争对手|那家|另一家|隔壁){G}{{0,8}}"
            r"(?:盗|抄|仿|侵犯|搬|扒|山寨|冒用|假冒|蹭)",
            r"(?:盗|抄|仿|侵犯|搬|扒|冒用|假冒|蹭)了?我",
            rf"(?:我|自己|自家){G}{{0,8}}(?:图|照片|商标|牌子|品牌|专利|设计|作品|详情页){G}{{0,4}}被{G}{{0,6}}"
            r"(?:盗|抄|仿|搬|扒|冒用|侵犯|用|拿|印)",
        )),
    ),
    "money": (  # refunds and compensation: from the merchant to a buyer, or back to the merchant
        ("out", _any(
            rf"{BUYER}{G}{{0,8}}(?:退款|退钱|退货款)(?!率)",
            r"仅退款|只退款|极速退款|同意退款|拒绝退款|驳回退款",
            rf"(?:退|还|赔|返|补)(?:款|钱)?给{PERSON}",
            rf"(?:还|退)(?:钱|款)?{PERSON}",
            rf"(?:给|帮){PERSON}(?:退|赔|返|补)",
            rf"赔(?:给|偿)?{BUYER}",
        )),
        ("in", _any(
            rf"{DEPOSIT}{G}{{0,6}}(?:退|拿回|要回|取回|返还)",
            rf"退(?:还|回)?{DEPOSIT}",
            r"(?:退|还|返还|退回|退还|补偿|赔|返)(?:款|钱)?给我(?=$|[\s吗不了钱吧呢啊没]|的(?!包裹|快递|货|件|东西|商品))",
            r"(?:拿|要|讨|取)回来|追回(?!快递|包裹|货)|讨回|(?:拿|要)回(?:钱|款|货款|保证金|押金|损失)",
            rf"(?:赔|扣)(?:出去|掉|走)?的(?:钱|款){G}{{0,6}}(?:退|还|回)",
            r"(?:补偿|赔偿)我",
            rf"损失{G}{{0,4}}(?:补偿|赔付|谁承担|能补|补)",
            rf"(?:退|返)(?:回|还)?到(?:我的?)?{G}{{0,2}}(?:余额|账户|账上|卡|保证金|货款)",
        )),
    ),
    "deposit": (
        ("deducted", _any(
            rf"{DEPOSIT}{G}{{0,6}}(?:被扣|被划|被拿|被用|扣了|划走|少了|变少|扣款|扣除|莫名)",
            rf"(?<!代)扣(?!缴)(?:了|走)?(?:我的?)?{G}{{0,2}}{DEPOSIT}",
            rf"划(?:了|走)(?:我的?)?{G}{{0,2}}{DEPOSIT}",
        )),
        ("topup", _any(
            rf"{DEPOSIT}{G}{{0,8}}(?:补|充|续缴|不足|不够|欠|差)",
            rf"(?:补缴|补交|补齐|补足|续缴|充值|补|充)(?:进|入|上)?{G}{{0,2}}{DEPOSIT}",
            r"自动(?:扣缴|补缴|补)|代扣|代缴|扣缴|补缴|续缴|充进去",
        )),
    ),
    "invoice": (
        ("to_buyer", _any(
            rf"(?:{BUYER}|单位|企业买家){G}{{0,8}}(?:发票|开票|专票|普票|要票|的票|张票|报销凭证|fp)",
            rf"(?:给|帮|为){PERSON}{G}{{0,4}}(?:开|出|传|寄|补){G}{{0,2}}(?:发票|票)",
            rf"(?:开|出)给{PERSON}",
        )),
        ("to_me", _any(
            rf"(?:平台|服务费|佣金|推广费|扣点){G}{{0,8}}(?:发票|开票|的票|票据|fp|fapiao)",
            rf"给我们?{G}{{0,2}}(?:开|出){G}{{0,2}}(?:发票|票)",
        )),
    ),
    "fake_orders": (
        ("accused", _any(
            rf"(?:判|判定|认定|当成|当作|说|查|抓|算|定性)(?:为|成)?(?:我们?)?{G}{{0,2}}(?:刷单|虚假交易|补单|刷销量|sd)",
            rf"(?:刷单|虚假交易|补单|sd){G}{{0,2}}被(?:抓|查|判|发现|罚)",
            r"(?<![给帮替为])我们?(?:没有?)?(?:刷单|刷销量|补单)",  # not 给我刷单 (someone else did)
            rf"(?:让|找|请|叫){G}{{0,3}}(?:朋友|亲戚|同学|员工|家人|熟人|同事){G}{{0,6}}(?:下单|拍|刷|买)",
            r"冲销量|好评返现|好评反现",
        )),
        ("victim", _any(
            r"恶意(?:下单|拍单|拍|刷单|拒收)",
            rf"(?:同行|对手|竞品|对家){G}{{0,8}}(?:刷单|拍单|拍了|下单|拒收|拒签|刷我|搞我|陷害)",
            rf"(?:别人|有人){G}{{0,8}}(?:刷单|拒收|拒签|刷我|搞我|陷害)",
            r"给我(?:刷单|拍单)|刷我|陷害",
        )),
    ),
    "shipment": (
        ("return", _any(
            r"(?<![不没无免别])(?<!不想)(?<!不用)(?:退货|退件)(?!率)",
            r"(?<![不没])(?<!不想)(?<!不用)(?:寄回|发回)",
            r"(?:退回|退还)(?:来)?的?(?:货|包裹|快递|商品|东西|件|衣服)",
            r"退回来的|退回给我",
        )),
        ("outbound", _any(
            rf"(?:发|寄)给{BUYER}|我发的|发往|寄往|发出去的(?:快递|包裹|货)",
            rf"{PERSON}(?:说|反映|一直)?{G}{{0,3}}(?:没|未)有?收到(?!{G}{{0,2}}(?:发票|票|退款|钱|款))",
            r"买家催",
        )),
    ),
}


def query_direction(text: str) -> dict[str, str]:
    """The direction, per topic, of a normalised question: e.g. {"complaint": "received"} for 有人投诉我侵权,
    {"complaint": "filed"} for 我要投诉同行; a topic with cues on both sides (or none) is left out."""
    found = {}
    for topic, ((first, first_cues), (second, second_cues)) in TOPICS.items():
        rest, n_first = first_cues.subn(" ", text)
        has_second = second_cues.search(rest) is not None
        if n_first and not has_second:
            found[topic] = first
        elif has_second and not n_first:
            found[topic] = second
    return found


class DirectionBook:
    """Each FAQ's direction per topic, from its phrasings; ``adjust`` re-scores a search's hits by it."""

    def __init__(self, directions: Mapping[int, Mapping[str, str]]):
        self._of = {faq_id: dict(d) for faq_id, d in directions.items() if d}

    @classmethod
    def from_faqs(cls, faqs: Mapping[int, list[str]], min_cues: int = MIN_CUES,
                  min_share: float = MIN_SHARE) -> DirectionBook:
        """From each FAQ's phrasings (question + similar, raw or normalised): a topic's direction is the side of a
        clear majority (``min_share``) of the phrasings with a cue on it, given at least ``min_cues`` of them."""
        return cls({faq_id: faq_direction([query_direction(normalize(p)) for p in phrasings], min_cues, min_share)
                    for faq_id, phrasings in faqs.items()})

    def direction_of(self, faq_id: int) -> dict[str, str]:
        return dict(self._of.get(faq_id, {}))

    def __len__(self) -> int:
        """How many FAQs have a direction on some topic."""
        return len(self._of)

    def adjust(self, text: str, hits: list[Hit], penalty: float = PENALTY) -> list[Hit]:
        """``hits`` for the normalised question ``text``, each FAQ pointing against the question on some topic
        lowered by ``penalty`` (once), re-sorted by score; the very same list when nothing changes."""
        wanted = query_direction(text)
        if not wanted:
            return hits
        out, changed = [], False
        for h in hits:
            own = self._of.get(h.faq_id)
            if own and any(own.get(topic, side) != side for topic, side in wanted.items()):
                out.append(replace(h, score=h.score - penalty))
                changed = True
            else:
                out.append(h)
        if not changed:
            return hits
        out.sort(key=lambda h: h.score, reverse=True)  # stable: ties keep the search's order
        return out


def faq_direction(cues: list[dict[str, str]], min_cues: int = MIN_CUES, min_share: float = MIN_SHARE) -> dict[str, str]:
    """One FAQ's direction per topic from its phrasings' ``query_direction`` results."""
    counts: dict[str, Counter] = {}
    for found in cues:
        for topic, side in found.items():
            counts.setdefault(topic, Counter())[side] += 1
    result = {}
    for topic, sides in counts.items():
        total = sum(sides.values())
        side, n = sides.most_common(1)[0]
        if total >= min_cues and n / total >= min_share:
            result[topic] = side
    return result

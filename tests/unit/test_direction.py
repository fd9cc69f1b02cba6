import pytest

from knowledge_base import normalize
from knowledge_base.direction import PENALTY, DirectionBook, faq_direction, query_direction
from knowledge_base.index import Hit


@pytest.mark.parametrize("text, expected", [
    ("有人投诉我侵权", {"complaint": "received"}),
    ("被投诉侵权了", {"complaint": "received"}),       # not also 投诉侵权 (filed)
    ("买家告我", {"complaint": "received"}),
    ("我要投诉别人侵权", {"complaint": "filed"}),
    ("投诉同行", {"complaint": "filed"}),
    ("买家申请退款", {"money": "out"}),
    ("保证金怎么退回来", {"money": "in"}),
    ("保证金被扣了", {"deposit": "deducted"}),
    ("补缴保证金", {"deposit": "topup"}),
    ("被判刷单", {"fake_orders": "accused"}),
    ("同行给我刷单怎么办", {"fake_orders": "victim"}),  # 给我刷单: someone else did
    ("退货一直没收到", {"shipment": "return"}),
    ("买家说没收到货", {"shipment": "outbound"}),
    ("买家要发票", {"invoice": "to_buyer"}),
    ("平台服务费的发票在哪开", {"invoice": "to_me"}),
])
def test_cues_on_both_sides(text, expected):
    assert query_direction(normalize(text)) == expected


@pytest.mark.parametrize("text", ["怎么添加子账号", "告诉我怎么发货", "被告知要补充材料", "被投诉的店交了反通知", ""])
def test_no_cue_no_direction(text):
    assert query_direction(normalize(text)) == {}


def test_cues_for_both_sides_of_a_topic_cancel():
    assert "complaint" not in query_direction("被人恶意投诉了 想举报投诉方 也想投诉别人")


BOOK = DirectionBook.from_faqs({
    1: ["怎么投诉别人侵权", "我要投诉同行", "投诉仿冒店铺"],      # filed
    2: ["被投诉侵权了怎么办", "有人投诉我侵权", "别人说我侵权"],   # received
    3: ["保证金怎么退", "押金怎么拿回来"],                        # money in (押金 raw)
    4: ["怎么添加子账号", "子账号权限"],                           # no cue
})


def test_faq_direction_by_majority():
    assert BOOK.direction_of(1) == {"complaint": "filed"}
    assert BOOK.direction_of(2) == {"complaint": "received"}
    assert BOOK.direction_of(3) == {"money": "in"}
    assert BOOK.direction_of(4) == {}
    assert len(BOOK) == 3


def test_faq_direction_needs_a_clear_majority_of_enough_cues():
    filed, received = {"complaint": "filed"}, {"complaint": "received"}
    assert faq_direction([filed, filed, received, {}]) == {"complaint": "filed"}   # 2 of 3 ≥ 60%
    assert faq_direction([filed, received, {}]) == {}                              # 50%
    assert faq_direction([filed, {}, {}]) == {}                                    # one cue only
    assert faq_direction([filed, filed, received, received, filed]) == {"complaint": "filed"}
    assert faq_direction([filed, filed, received, received]) == {}


def test_no_cue_leaves_hits_untouched():
    hits = [Hit(1, 0.95, "a"), Hit(2, 0.94, "b"), Hit(4, 0.90, "c")]
    out = BOOK.adjust("怎么添加子账号", hits)
    assert out is hits
    assert [(h.faq_id, h.score) for h in out] == [(1, 0.95), (2, 0.94), (4, 0.90)]


def test_a_penalty_flips_a_wrong_order():
    hits = [Hit(1, 0.950, "怎么投诉别人侵权"), Hit(2, 0.945, "被投诉侵权了怎么办"), Hit(4, 0.90, "子账号权限")]
    out = BOOK.adjust(normalize("有人投诉我侵权，商品被下架了"), hits)
    assert [h.faq_id for h in out] == [2, 1, 4]
    assert out[1].score == pytest.approx(0.950 - PENALTY)
    assert out[0] is hits[1] and out[2] is hits[2]  # the others keep their score
    assert [h.faq_id for h in hits] == [1, 2, 4]    # the input is not changed


def test_only_faqs_pointing_the_other_way_lose():
    hits = [Hit(2, 0.95, "x"), Hit(3, 0.94, "y"), Hit(1, 0.93, "z")]
    out = BOOK.adjust(normalize("我要投诉同行侵权"), hits, penalty=0.1)
    assert [h.faq_id for h in out] == [3, 1, 2]  # 3 has no complaint direction, 1 agrees, 2 is received
    assert [h.score for h in out] == pytest.approx([0.94, 0.93, 0.85])


def test_a_query_agreeing_with_every_hit_changes_nothing():
    hits = [Hit(1, 0.95, "x"), Hit(4, 0.90, "y")]
    assert BOOK.adjust(normalize("我要投诉同行"), hits) is hits

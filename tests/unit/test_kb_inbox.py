"""未解决问题 inbox: clustering a small known log, the three actions, and questions that come back."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from api.main import create_app
from api.models import Conversation, Faq, Feedback, Message, Sender, UnansweredQuestion
from api.services import inbox

from ..conftest import merchant_headers, staff_login

LIVE = ["直播间怎么开通", "直播间怎么开通", "直播间怎么开通", "怎么开通直播间", "直播间如何开通"]
INVOICE = ["发票抬头写错了能改吗", "发票抬头写错了怎么改", "发票抬头错了能修改吗"]
ABROAD = ["海外买家可以下单吗", "国外的买家能不能下单"]


@pytest.fixture
def client(database):
    with TestClient(create_app(database)) as c:
        assert c.app.state.kb.wait_ready(120)
        yield c


def editor(client, settings) -> dict:
    return staff_login(client, settings.demo_password, "editor01")


def seed_log(settings) -> dict:
    """The three groups as unanswered questions, plus one 没用 and one 都不是 from a real-looking conversation."""
    engine = create_engine(settings.sqlalchemy_url)
    with Session(engine) as db:
        conv = Conversation(merchant_id=1)
        db.add(conv)
        db.flush()
        for text in LIVE + INVOICE + ABROAD:
            db.add(UnansweredQuestion(text=text, merchant_id=1, conversation_id=conv.id))
        # 没用 on an FAQ answer: the question is the merchant message the answer replied to
        asked = Message(conversation_id=conv.id, sender=Sender.merchant, text="直播间怎么开通呢")
        db.add(asked)
        db.flush()
        faq_id = db.scalar(select(Faq.id).limit(1))
        db.add(Message(conversation_id=conv.id, sender=Sender.bot, text="答案", feedback=Feedback.useless,
                       payload={"buttons": [], "custom": {"type": "faq_answer", "faq_id": faq_id}, "reply_to": asked.id}))
        # 都不是 under a 您是想问 offer: the question is the one that was offered choices
        offered = Message(conversation_id=conv.id, sender=Sender.merchant, text="海外买家能不能下单")
        db.add(offered)
        db.flush()
        db.add(Message(conversation_id=conv.id, sender=Sender.bot, text="您是想问以下哪个问题？",
                       payload={"buttons": [], "reply_to": offered.id, "custom": {
                           "type": "kb_clarify", "understood": {"faqs": [{"id": faq_id, "question": "x", "score": 0.9}]}}}))
        db.add(Message(conversation_id=conv.id, sender=Sender.merchant, text="都不是",
                       payload={"payload": "/request_human"}))
        # a 都不是 typed without an offer before it is not a 都不是 pick
        db.add(Message(conversation_id=conv.id, sender=Sender.merchant, text="都不是"))
        db.commit()
        ids = {"conversation": conv.id}
    engine.dispose()
    return ids


def holding(clusters: list[dict], text: str) -> dict:
    return next(c for c in clusters if text in {e["text"] for e in c["examples"]})


def test_known_groups_become_clusters_named_by_their_central_question(client, database):
    ids = seed_log(database)
    h = editor(client, database)
    body = client.get("/api/kb/inbox", headers=h).json()
    assert body["questions"] == len(LIVE + INVOICE + ABROAD) + 2
    clusters = body["clusters"]
    assert len(clusters) == 3, [(c["name"], c["examples"]) for c in clusters]
    live, invoice, abroad = clusters[0], holding(clusters, INVOICE[0]), holding(clusters, ABROAD[0])
    assert [c["count"] for c in clusters] == [6, 3, 3]  # largest first
    assert live["name"] == "直播间怎么开通"  # asked most and central to the group
    assert {e["text"] for e in live["examples"]} == set(LIVE) | {"直播间怎么开通呢"}
    assert live["examples"][0]["text"] == "直播间怎么开通" and live["examples"][0]["count"] == 3
    assert len(live["examples"][0]["question_ids"]) == 3
    assert live["sources"] == {"no_answer": 5, "useless": 1}
    assert {e["text"] for e in invoice["examples"]} == set(INVOICE)
    assert {e["text"] for e in abroad["examples"]} == set(ABROAD) | {"海外买家能不能下单"}
    assert abroad["sources"] == {"no_answer": 2, "none_matched": 1}
    assert live["conversations"] == [ids["conversation"]]
    assert invoice["suggestions"] and invoice["suggestions"][0]["score"] > 0
    # reading again adds nothing twice (one row per message)
    again = client.get("/api/kb/inbox", headers=h).json()
    assert again["questions"] == body["questions"]
    # a threshold above every pair's cosine leaves each distinct question alone
    apart = client.get("/api/kb/inbox", params={"threshold": 0.99}, headers=h).json()
    assert apart["total_clusters"] > 3


def test_the_three_actions_empty_the_inbox_and_a_question_asked_again_comes_back(client, database):
    seed_log(database)
    h = editor(client, database)
    clusters = client.get("/api/kb/inbox", headers=h).json()["clusters"]
    live, invoice, abroad = clusters[0], holding(clusters, INVOICE[0]), holding(clusters, ABROAD[0])

    target = live["suggestions"][0]["faq_id"]
    resp = client.post("/api/kb/inbox/attach", headers=h,
                       json={"question_ids": live["question_ids"], "faq_id": target, "publish": True})
    assert resp.status_code == 200, resp.text
    assert set(resp.json()["added"]) == set(LIVE) | {"直播间怎么开通呢"} and resp.json()["status"] == "published"
    faq = client.get(f"/api/kb/faqs/{target}", headers=h).json()
    assert "怎么开通直播间" in faq["similar"]
    hit = client.post("/internal/kb/search", json={"text": "怎么开通直播间"},
                      headers={"X-Internal-Token": database.internal_token}).json()
    assert hit["decision"] == "answer" and hit["hits"][0]["faq_id"] == target  # the bot answers it now

    resp = client.post("/api/kb/inbox/create-faq", headers=h, json={"question_ids": invoice["question_ids"]})
    assert resp.status_code == 201, resp.text
    draft = resp.json()
    assert draft["status"] == "draft" and draft["question"] in INVOICE
    assert set(draft["similar"]) | {draft["question"]} == set(INVOICE)

    assert client.post("/api/kb/inbox/ignore", headers=h,
                       json={"question_ids": abroad["question_ids"]}).json() == {"resolved": 3}
    assert client.get("/api/kb/inbox", headers=h).json()["clusters"] == []

    # acting twice on the same questions is refused in Chinese; nothing to act on is a 422 too
    again = client.post("/api/kb/inbox/ignore", headers=h, json={"question_ids": abroad["question_ids"]})
    assert again.status_code == 422 and "已经处理过" in again.json()["detail"]
    missing = client.post("/api/kb/inbox/ignore", headers=h, json={"question_ids": [2_000_000_000]})
    assert missing.status_code == 404 and "不存在" in missing.json()["detail"]
    assert client.post("/api/kb/inbox/ignore", headers=h, json={"question_ids": []}).status_code == 422

    # the ignored question, asked again later, comes back
    engine = create_engine(database.sqlalchemy_url)
    with Session(engine) as db:
        db.add(UnansweredQuestion(text="国外的买家能不能下单"))
        db.commit()
        kinds = dict(db.execute(select(UnansweredQuestion.text, UnansweredQuestion.resolution)
                                .where(UnansweredQuestion.text == "怎么开通直播间")).all())
    engine.dispose()
    assert kinds == {"怎么开通直播间": "attached"}
    back = client.get("/api/kb/inbox", headers=h).json()["clusters"]
    assert [(c["name"], c["count"]) for c in back] == [("国外的买家能不能下单", 1)]


def test_only_the_knowledge_team_reads_the_inbox_and_conversations_open(client, database):
    ids = seed_log(database)
    assert client.get("/api/kb/inbox", headers=merchant_headers(database)).status_code == 403
    h = editor(client, database)
    messages = client.get("/api/kb/inbox/conversation", params={"conversation_id": ids["conversation"]},
                          headers=h).json()
    assert [m["text"] for m in messages][:2] == ["直播间怎么开通呢", "答案"]
    gone = client.get("/api/kb/inbox/conversation", params={"conversation_id": 2_000_000_000}, headers=h)
    assert gone.status_code == 404 and gone.json()["detail"] == "会话不存在"
    bad = client.post("/api/kb/inbox/attach", headers=h, json={"question_ids": [1], "faq_id": 0})
    assert bad.status_code == 422


def test_batched_clustering_keeps_separate_groups_apart():
    """Above the agglomerative size the batches join the nearest cluster within the threshold or found new ones."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(6, 32))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth = rng.integers(6, size=900)
    points = centres[truth] + rng.normal(0, 0.03, size=(900, 32))
    points = (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)
    labels = inbox.cluster(points, None, threshold=0.9, batch=200)
    assert len(set(labels)) == 6
    for group in range(6):
        assert len(set(labels[truth == group])) == 1
    assert inbox.central(points[:3], np.array([1.0, 1.0, 1.0], dtype=np.float32)) in (0, 1, 2)

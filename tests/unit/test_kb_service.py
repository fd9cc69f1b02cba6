"""The saved index is reused while it matches the data and rebuilt when anything it depends on changes."""

import json

from sqlalchemy import text
from sqlalchemy.orm import Session

from api.db import make_engine
from api.kb_service import build_retriever, data_fingerprint, saved_index_is_current, thresholds_for
from api.models import Faq, Synonym
from api.services import faqs as faq_service
from knowledge_base import Thresholds


def test_saved_index_is_reused_until_the_data_changes(database, embedder, tmp_path):
    engine = make_engine(database.sqlalchemy_url)
    index_dir = tmp_path / "own-index"
    with engine.begin() as conn:  # a dozen FAQs are enough to see what triggers a rebuild
        conn.execute(text("UPDATE faqs SET status = 'archived' WHERE id > 12"))
    with Session(engine) as db:
        model = database.embedding_model
        assert not saved_index_is_current(db, model, "query: ", index_dir)
        first, source1 = build_retriever(db, embedder, index_dir)
        assert saved_index_is_current(db, model, "query: ", index_dir)  # known without loading the model
        again, source2 = build_retriever(db, embedder, index_dir)
        assert (source1, source2) == ("rebuilt", "disk")
        assert len(again.index) == len(first.index)
        assert again.search("保证金怎么退").hits[0].faq_id == first.search("保证金怎么退").hits[0].faq_id

        before = data_fingerprint(db, embedder, faq_service.synonyms(db))
        faq = db.query(Faq).first()
        faq_service.set_status(db, faq, faq.status, "editor01")  # a new version of one FAQ
        db.commit()
        assert data_fingerprint(db, embedder, faq_service.synonyms(db)) != before
        assert not saved_index_is_current(db, model, "query: ", index_dir)
        assert build_retriever(db, embedder, index_dir)[1] == "rebuilt"

        db.add(Synonym(term="铺子", canonical="店铺"))
        db.commit()
        assert build_retriever(db, embedder, index_dir)[1] == "rebuilt"
        assert build_retriever(db, embedder, index_dir)[1] == "disk"
    engine.dispose()


def test_thresholds_carry_their_lexical_weight_and_the_grid_gives_the_others(tmp_path):
    path = tmp_path / "thresholds.json"
    path.write_text(json.dumps({"m": {
        "answer": 0.8, "margin": 0.05, "clarify": 0.7, "lexical": 0.4,
        "calibration": {"lexical_grid": {"0.0": {"answer": 0.7, "margin": 0.03, "clarify": 0.66, "utility": 0.5},
                                         "0.4": {"answer": 0.8, "margin": 0.05, "clarify": 0.7, "utility": 0.6}}}},
        "old": {"answer": 0.9, "margin": 0.01, "clarify": 0.88}}))
    assert thresholds_for("m", path) == Thresholds(answer=0.8, margin=0.05, clarify=0.7, lexical=0.4)
    assert thresholds_for("m", path, lexical=0) == Thresholds(answer=0.7, margin=0.03, clarify=0.66, lexical=0.0)
    assert thresholds_for("m", path, lexical=0.4) == thresholds_for("m", path)
    assert thresholds_for("m", path, lexical=0.9) == Thresholds()  # not calibrated: the defaults
    assert thresholds_for("old", path).lexical == 0.0  # calibrated before the lexical bonus: cosine alone
    assert thresholds_for("missing", path) == Thresholds()

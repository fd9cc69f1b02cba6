"""The saved index is reused while it matches the data and rebuilt when anything it depends on changes."""

from sqlalchemy.orm import Session

from api.db import make_engine
from api.kb_service import build_retriever, data_fingerprint
from api.models import Faq, Synonym
from api.services import faqs as faq_service


def test_saved_index_is_reused_until_the_data_changes(database, embedder, tmp_path):
    engine = make_engine(database.sqlalchemy_url)
    index_dir = tmp_path / "own-index"
    with Session(engine) as db:
        first, source1 = build_retriever(db, embedder, index_dir)
        again, source2 = build_retriever(db, embedder, index_dir)
        assert (source1, source2) == ("rebuilt", "disk")
        assert len(again.index) == len(first.index)
        assert again.search("保证金怎么退").hits[0].faq_id == first.search("保证金怎么退").hits[0].faq_id

        before = data_fingerprint(db, embedder, faq_service.synonyms(db))
        faq = db.query(Faq).first()
        faq_service.set_status(db, faq, faq.status, "editor01")  # a new version of one FAQ
        db.commit()
        assert data_fingerprint(db, embedder, faq_service.synonyms(db)) != before
        assert build_retriever(db, embedder, index_dir)[1] == "rebuilt"

        db.add(Synonym(term="铺子", canonical="店铺"))
        db.commit()
        assert build_retriever(db, embedder, index_dir)[1] == "rebuilt"
        assert build_retriever(db, embedder, index_dir)[1] == "disk"
    engine.dispose()

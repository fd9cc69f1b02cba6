"""Evidence files (api/services/appeals.py): the type is read from the first bytes, whatever the client claims.

Properties checked with hypothesis on any bytes and any claimed type; the service runs on a transient appeal with
an in-memory file store (the API-level behaviour, with a real database, is in test_service_api.py).
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.models import Appeal, AppealStatus
from api.services import appeals
from api.services.errors import ServiceError

PROPERTY = settings(max_examples=500, derandomize=True, database=None, deadline=None)
# What each type's file starts with, written out here on its own (not read from the module under test).
MAGIC = {
    "image/png": [b"\x89PNG\r\n\x1a\n"],
    "image/jpeg": [b"\xff\xd8\xff"],
    "image/gif": [b"GIF87a", b"GIF89a"],
    "application/pdf": [b"%PDF-"],
}


def looks_like(content_type: str, data: bytes) -> bool:
    if content_type == "image/webp":
        return data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    return any(data.startswith(magic) for magic in MAGIC.get(content_type, []))


TYPES = [*MAGIC, "image/webp"]
HEADS = [m for ms in MAGIC.values() for m in ms] + [b"RIFF", b"RIFF\x10\x00\x00\x00WEBP", b"RIFF\x10\x00\x00\x00WAVE",
                                                   b"\x89PNG", b"GIF8", b"%PDF", b"\xff\xd8", b"<svg", b"MZ"]
# random bytes, and bytes that start with a real or a nearly right signature
DATA = st.one_of(st.binary(max_size=64), st.builds(bytes.__add__, st.sampled_from(HEADS), st.binary(max_size=40)))
CLAIMS = st.one_of(st.sampled_from([*TYPES, "application/octet-stream", "", "IMAGE/PNG", "image/png; q=1",
                                    "text/html", "image/svg+xml", "application/x-msdownload"]), st.text(max_size=30))


class Store:
    def __init__(self):
        self.files: dict[str, bytes] = {}

    def put(self, key, data):
        self.files[key] = data

    def delete(self, key):
        self.files.pop(key, None)


class Db:
    def flush(self):
        pass


@PROPERTY
@given(data=st.one_of(DATA, st.binary(max_size=4096)))
def test_detect_type_never_raises_and_names_a_type_only_when_the_bytes_match_it(data):
    detected = appeals.detect_type(data)
    assert detected is None or (detected in TYPES and looks_like(detected, data))
    if detected is None:
        assert not any(looks_like(t, data) for t in TYPES)


@PROPERTY
@given(data=DATA, claim=CLAIMS)
def test_evidence_is_stored_only_when_its_bytes_are_the_type_it_claims(data, claim):
    store, appeal = Store(), Appeal(number="SS2611250000001", status=AppealStatus.pending)
    try:
        evidence = appeals.add_evidence(Db(), store, appeal, filename="证据.png", declared_type=claim, data=data,
                                        max_bytes=48, max_files=5, actor="M10001")
    except ServiceError as exc:
        assert exc.status_code in (413, 415, 422) and exc.detail
        assert store.files == {} and appeal.evidence == []
        return
    named = claim.split(";")[0].strip().lower()
    assert looks_like(evidence.content_type, data)
    assert named in ("", "application/octet-stream", evidence.content_type)
    assert store.files == {evidence.storage_key: data} and appeal.evidence == [evidence]
    assert 0 < len(data) <= 48


@pytest.mark.parametrize("data", [b"RIFF\x10\x00\x00\x00WAVEfmt ", b"\x89PNG\r\n", b"GIF88a", b"%PDF"])
def test_nearly_right_signatures_are_not_a_type(data):
    assert appeals.detect_type(data) is None

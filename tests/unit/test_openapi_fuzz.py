"""The API fuzzed against its own OpenAPI document (schemathesis, in-process on the ASGI app, no server).

Each kind of caller (a merchant, an agent, a knowledge editor, an admin, nobody) gets generated requests, valid
and invalid, for the operations it may use. Every answer must be one the document describes (status code,
content type, body, headers), invalid input must be refused with a 4xx, and nothing may answer 5xx except the
503 an operation documents for an absent Rasa (unit tests run without it) or a knowledge base still loading.

Bounded and repeatable: a fixed seed, deterministic generation, the coverage phase's boundary cases plus
``MAX_EXAMPLES`` generated ones per operation (~1.5 minutes on 2 cores).
"""

from __future__ import annotations

import shutil
from collections import Counter

import pytest
import schemathesis
from schemathesis.checks import negative_data_rejection
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.engine import events
from schemathesis.python import asgi
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from api import security
from api.main import create_app
from api.models import User

from ..conftest import fresh_database, make_settings, merchant_headers
from .test_authorization import ADMIN, AGENT, ANYONE, EDITOR, MERCHANT, PUBLIC, who

pytestmark = pytest.mark.slow  # ~1.5 minutes on 2 cores: in `make test`, not in `make check`

MAX_EXAMPLES = 25
SEED = 20261118
# Refusing invalid input: any client error the document allows (401/403 never, the caller is valid).
REJECTED = ["400", "404", "405", "409", "413", "415", "422"]
STAFF = {AGENT: "agent01", EDITOR: "editor01", ADMIN: "admin"}
NOT_FUZZED = {"POST /api/kb/tuning/start": "starts fine-tuning the embedding model: minutes of CPU in the background"}


def may_call(role: str, method: str, path: str) -> bool:
    """The operations each caller is fuzzed on: the ones the authorisation matrix lets it use (that test checks
    the refusals); an admin only on what only an admin may do (the rest runs as the agent and the editor)."""
    op = f"{method} {path}"
    try:
        allowed = who(op)
    except KeyError:  # an operation without an entry: test_authorization.py fails on it
        return False
    if op in NOT_FUZZED:
        return False
    if role == "nobody":
        return PUBLIC in allowed
    if role == ADMIN:
        return allowed == {ADMIN}
    return PUBLIC not in allowed and (ANYONE in allowed or role in allowed)


def config(authorization: str | None) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict({
        "seed": SEED,
        "cache": {"enabled": False},
        "suppress-health-check": ["all"],
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            "not_a_server_error": {"enabled": False},  # sjzs_no_server_error below, which knows the 503s
            "positive_data_acceptance": {"enabled": False},  # valid-looking ids of nothing get 404, by design
            "negative_data_rejection": {"enabled": False, "expected-statuses": REJECTED},  # see below
        },
        # the caller is fixed: the fuzzer varies everything else
        "parameters": {"header.authorization": authorization} if authorization else {},
    })


@schemathesis.check
def sjzs_no_server_error(_ctx, response, case) -> None:
    """No 5xx, except a 503 the operation documents (Rasa absent, knowledge base loading)."""
    documented = case.operation.responses.status_codes
    if response.status_code >= 500 and not (response.status_code == 503 and "503" in documented):
        raise AssertionError(f"服务器错误 {response.status_code}：{response.text[:300]}")


@schemathesis.check
def sjzs_rejects_invalid_data(ctx, response, case) -> None:
    """Invalid input is refused with a 4xx; except a JSON scalar pydantic reads in its lax mode (0 or "true"
    for a boolean, "5" or false for an integer), at the top of the body or inside it (``[true]`` for a list of
    ids), which the API accepts like every pydantic app. Lengths, ranges, patterns and missing fields stay strict."""
    try:
        negative_data_rejection(ctx, response, case)
    except AcceptedNegativeData as exc:
        if "Incorrect type" not in exc.message and "violates `type`" not in exc.message:  # at the top or nested
            raise


@pytest.fixture(scope="module")
def app_and_tokens(tmp_path_factory, templates, template_index):
    tmp = tmp_path_factory.mktemp("fuzz")
    with fresh_database("sqlite", tmp, templates) as url:
        settings = make_settings(tmp, database_url=url)
        shutil.copytree(template_index, settings.index_dir, dirs_exist_ok=True)
        engine = create_engine(url)
        with Session(engine) as db:
            users = {name: db.scalar(select(User).where(User.username == name)) for name in STAFF.values()}
        engine.dispose()
        tokens = {role: "Bearer " + security.create_staff_token(users[name].id, users[name].role.value,
                                                                  settings.secret_key, 60)
                  for role, name in STAFF.items()}
        tokens[MERCHANT] = merchant_headers(settings, "M10001", 60)["Authorization"]
        tokens["nobody"] = None
        yield create_app(settings), tokens
        asgi.shutdown_lifespans()  # the app's lifespan (started by schemathesis): engine, index watcher


def fuzz(app, authorization: str | None, role: str) -> tuple[list[str], Counter]:
    """Run schemathesis's engine (what ``schemathesis run`` does) on the operations ``role`` may use: the
    failures found, one line each, and how often each operation answered each status."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config(authorization))
    schema = schema.include(lambda ctx: may_call(role, ctx.operation.method.upper(), ctx.operation.path))
    problems, answers = [], Counter()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            answers.update((event.recorder.label, i.response.status_code)
                           for i in event.recorder.interactions.values() if i.response is not None)
            for checks in event.recorder.checks.values():
                problems += [f"{event.recorder.label} · {c.name} · {c.failure_info.failure.title}: "
                             f"{c.failure_info.failure.message[:300]}\n    {c.failure_info.code_sample[:500]}"
                             for c in checks if c.failure_info]
        elif isinstance(event, events.NonFatalError):
            problems.append(f"{event.label} · 异常 · {event.value!r}")
        elif isinstance(event, events.FatalError):
            problems.append(f"运行中断 · {event.exception!r}")
    return sorted(set(problems)), answers


@pytest.mark.parametrize("role", [MERCHANT, AGENT, EDITOR, ADMIN, "nobody"])
def test_every_answer_is_documented_and_nothing_fails(app_and_tokens, role):
    app, tokens = app_and_tokens
    problems, answers = fuzz(app, tokens[role], role)
    assert not problems, "\n".join(problems)
    fuzzed, reached = {op for op, _ in answers}, {op for op, status in answers if status < 300}
    assert len(fuzzed) >= 2, f"{role}: too few operations fuzzed: {sorted(fuzzed)}"
    if role != "nobody":  # the fuzz really ran as that caller: its token worked, and most operations answered 2xx
        assert not [op for op, status in answers if status == 401], f"{role}: token refused"
        assert len(reached) * 2 >= len(fuzzed), f"{role}: few operations ever succeeded: {sorted(reached)}"

"""The OpenAPI document (api/openapi.py) describes the errors the API really sends; the fuzzing against it is in
test_openapi_fuzz.py."""

import json

import pytest

from api import openapi
from api.main import create_app
from api.schemas import ErrorOut

from ..conftest import make_settings

ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return create_app(make_settings(tmp_path_factory.mktemp("openapi")))


@pytest.fixture(scope="module")
def spec(app):
    return app.openapi()


def operations(spec):
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            yield f"{method.upper()} {path}", op["responses"]


def test_every_error_answer_is_an_error_out(spec):
    wrong = [f"{op} {status}" for op, responses in operations(spec) for status, r in responses.items()
             if int(status) >= 400 and r["content"]["application/json"]["schema"] != ERROR_REF
             and (op, status) != ("GET /healthz", "503")]
    assert not wrong
    assert "HTTPValidationError" not in json.dumps(spec)  # FastAPI's 422 body, which the API never sends


def test_error_out_says_what_is_sent(spec):
    schema = spec["components"]["schemas"]["ErrorOut"]
    assert schema["required"] == ["detail"] and schema["properties"]["detail"]["type"] == "string"
    assert schema["properties"]["errors"]["type"] == "array"  # never null: left out when there is none
    assert spec["components"]["schemas"]["FieldError"]["required"] == ["field", "type"]
    assert ErrorOut(detail="请先登录").model_dump(exclude_none=True) == {"detail": "请先登录"}


def test_statuses_come_from_the_caller_checks_the_body_limit_and_the_routes(spec):
    def statuses(method, path):
        return set(spec["paths"][path][method]["responses"])

    assert statuses("get", "/api/me") == {"200", "401", "422"}  # anyone with a token: no 403
    assert statuses("get", "/api/cases") == {"200", "401", "403", "422"}
    assert statuses("post", "/api/staff/users") == {"201", "401", "403", "409", "413", "422"}
    assert statuses("post", "/api/appeals/{number}/evidence") >= {"401", "403", "404", "409", "413", "415", "429"}
    assert statuses("post", "/api/auth/login") == {"200", "401", "403", "413", "422", "429"}
    assert "Retry-After" in spec["paths"]["/api/auth/login"]["post"]["responses"]["429"]["headers"]
    assert not any("413" in r for op, r in operations(spec) if op.startswith("GET "))


def test_healthz_documents_its_503_report_like_its_200(spec):
    responses = spec["paths"]["/healthz"]["get"]["responses"]
    assert responses["503"]["content"] == responses["200"]["content"]
    assert "401" not in responses


def test_every_route_listed_in_extra_exists(spec):
    stale = [key for key in openapi.EXTRA
             if key.split(" ", 1)[1] not in spec["paths"]
             or key.split(" ", 1)[0].lower() not in spec["paths"][key.split(" ", 1)[1]]]
    assert not stale


def test_the_document_is_built_once_and_kept(app, spec):
    assert app.openapi() is spec


def test_the_csv_exports_document_their_content_type(spec):
    for path in ("/api/analytics/export", "/api/kb/workbench/export"):
        assert "text/csv" in spec["paths"][path]["get"]["responses"]["200"]["content"]

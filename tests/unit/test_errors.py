"""Error bodies (api/errors.py): a Chinese ``detail`` for people, the shape the OpenAPI document gives them
(``ErrorOut``), and none of the framework's English answers."""

import shutil

import pytest
from fastapi.testclient import TestClient

from api.errors import UNREADABLE_BODY
from api.main import create_app
from api.schemas import ErrorOut

from ..conftest import fresh_database, make_settings, merchant_headers


@pytest.fixture(scope="module")
def client(tmp_path_factory, templates, template_index):
    tmp = tmp_path_factory.mktemp("errors")
    with fresh_database("sqlite", tmp, templates) as url:
        settings = make_settings(tmp, database_url=url)
        shutil.copytree(template_index, settings.index_dir)  # the saved index: no rebuild behind the tests
        with TestClient(create_app(settings)) as c:
            c.merchant = merchant_headers(settings)
            yield c


def error(resp, status: int) -> ErrorOut:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    return ErrorOut.model_validate(resp.json(), strict=True)


def test_a_failed_validation_keeps_its_chinese_detail_and_lists_the_fields(client):
    body = client.post("/api/auth/login", json={"username": "agent01"}).json()
    assert body == {"detail": "请求有误：password：缺少必填项",
                    "errors": [{"field": "body.password", "type": "missing"}]}


def test_errors_raised_by_routes_and_services_are_unchanged(client):
    resp = client.get("/api/me")
    assert error(resp, 401).detail == "请先登录" and resp.headers["www-authenticate"] == "Bearer"
    assert error(client.get("/api/cases/GD000000000000", headers=client.merchant), 404).detail.startswith("查不到")
    assert "errors" not in client.get("/api/cases/GD1", headers=client.merchant).json()


def test_a_json_body_that_is_not_utf8_is_a_422_in_chinese_not_a_400(client):
    resp = client.post("/api/auth/login", content=b'{"username": "\xff\xfe", "password": "x"}',
                       headers={"Content-Type": "application/json"})
    assert error(resp, 422).detail == UNREADABLE_BODY


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary="])
def test_a_broken_upload_form_is_a_422_in_chinese(client, content_type):
    resp = client.post("/api/appeals/SS2611250000001/evidence", content=b"--x\r\nbroken",
                       headers={**client.merchant, "Content-Type": content_type})
    assert error(resp, 422).detail == UNREADABLE_BODY


def test_a_method_the_path_does_not_take_names_every_method_it_does(client):
    resp = client.request("OPTIONS", "/api/appeals")
    assert error(resp, 405).detail == "该接口不支持这种请求方法"
    assert resp.headers["allow"] == "GET, POST"  # Starlette named only the first route's: GET
    assert client.delete("/api/kb/hot-questions").headers["allow"] == "GET, PUT"


def test_an_unknown_path_is_a_404_in_chinese(client):
    assert error(client.get("/api/no-such-thing"), 404).detail == "接口不存在，请检查地址"

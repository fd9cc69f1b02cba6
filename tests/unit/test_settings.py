"""Settings (core/settings.py): production refuses to start with anything a development checkout runs with."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import DEV_SECRETS, Settings

LOCKED = {"environment": "production", "internal_token": "i" * 40, "rasa_token": "r" * 40, "secret_key": "s" * 40,
          "widget_secret": "w" * 40, "demo": False, "demo_password": "a-strong-password",
          "widget_origins": ["https://seller.example.com"]}


def test_development_runs_with_its_defaults():
    assert Settings().environment == "development"


def test_production_starts_only_locked_down():
    assert Settings(**LOCKED).environment == "production"


@pytest.mark.parametrize(("change", "phrase"), [
    *[({name: default}, f"SJZS_{name.upper()} 仍是默认值") for name, default in DEV_SECRETS.items()],
    ({"secret_key": "short"}, "SJZS_SECRET_KEY 太短"),
    ({"demo": True}, "演示页面仍开启"),
    ({"demo_password": "sjzs-demo"}, "演示账号密码"),
    ({"widget_origins": ["*"]}, "SJZS_WIDGET_ORIGINS 不能是 *"),
])
def test_production_refuses_each_development_default(change, phrase):
    with pytest.raises(ValidationError) as refused:
        Settings(**{**LOCKED, **change})
    assert phrase in str(refused.value) and "生产模式拒绝启动" in str(refused.value)

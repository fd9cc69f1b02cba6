"""Request and response bodies."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ChatRequest(BaseModel):
    merchant_id: str = Field(min_length=1, max_length=32, description="商家编号，如 M10001")
    text: str = Field(description="商家发送的文字")
    conversation_id: int | None = Field(default=None, ge=1)


class Button(BaseModel):
    title: str
    payload: str


class BotMessage(BaseModel):
    sender: str = "bot"
    text: str = ""
    buttons: list[Button] = []
    custom: dict | None = None


class ChatResponse(BaseModel):
    conversation_id: int
    messages: list[BotMessage]


class KbSearchRequest(BaseModel):
    text: str = Field(max_length=20000)
    k: int = Field(default=5, ge=1, le=20)


class KbHit(BaseModel):
    faq_id: int
    key: str
    question: str
    answer: str
    category: str
    score: float


class KbSearchResponse(BaseModel):
    decision: str
    normalized: str
    hits: list[KbHit]

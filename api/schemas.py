"""Request and response bodies."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema


class ChatRequest(BaseModel):
    text: str = Field(description="商家发送的文字（点按钮时为按钮标题）")
    conversation_id: int | None = Field(default=None, ge=1)
    payload: str | None = Field(default=None, description="按钮的 payload（/intent{…}），交给助手理解")
    client_id: str | None = Field(default=None, description="客户端生成的消息编号，重发时据此去重")


class Button(BaseModel):
    title: str
    payload: str


class BotMessage(BaseModel):
    id: int | None = None
    sender: str = "bot"
    text: str = ""
    buttons: list[Button] = []
    custom: dict | None = None


class ChatResponse(BaseModel):
    conversation_id: int
    mode: str = "bot"
    messages: list[BotMessage]


class KbSearchRequest(BaseModel):
    text: str = Field(max_length=20000)
    k: int = Field(default=5, ge=1, le=20)
    log_unanswered: bool = Field(default=False, description="不答时记入未回答问题表")
    conversation_id: int | None = None
    context_faq_id: int | None = Field(default=None, description="会话刚回答过的 FAQ：据此理解追问")


class KbHit(BaseModel):
    faq_id: int
    key: str
    question: str
    answer: str
    category: str
    action: str | None = None
    score: float
    answer_html: str = ""  # the answer's markdown as sanitised HTML (api/rendering.py); ``answer`` stays the text


class KbSearchResponse(BaseModel):
    decision: str
    normalized: str
    hits: list[KbHit]
    context_used: bool = False  # read as a follow-up of ``context_faq_id``


# --------------------------------------------------------------------------- errors


class FieldError(BaseModel):
    field: str = Field(description="出错的位置，例如 body.text、query.k")
    type: str = Field(description="错误类型（供程序判断），例如 missing、string_too_long")


# Every error the API answers (4xx and 503): a Chinese reason for people; a failed validation also lists the
# fields at fault for clients. ``errors`` is left out of the body when there is none (never sent as null).
class ErrorOut(BaseModel):
    detail: str = Field(description="给人看的中文原因")
    errors: list[FieldError] | SkipJsonSchema[None] = Field(
        default=None, description="请求校验失败时：每个出错的字段", json_schema_extra=lambda s: s.pop("default"))


# --------------------------------------------------------------------------- auth


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    role: str
    display_name: str


class MeResponse(BaseModel):
    role: str
    merchant_code: str | None = None
    merchant_name: str | None = None
    username: str | None = None
    display_name: str | None = None


# --------------------------------------------------------------------------- cases, penalties, appeals


class TimelineStep(BaseModel):
    at: datetime
    status: str
    status_label: str
    note: str
    expected_done_at: datetime | None = None
    actor: str | None = None


class CaseSummary(BaseModel):
    number: str
    kind: str
    kind_label: str
    title: str
    status: str
    status_label: str
    expected_done_at: datetime | None
    created_at: datetime
    updated_at: datetime


class CaseDetail(CaseSummary):
    merchant_code: str | None = None
    timeline: list[TimelineStep]


class CaseAdvance(BaseModel):
    status: str
    note: str = Field(min_length=1, max_length=2000)
    expected_done_at: datetime | None = None


class PenaltyOut(BaseModel):
    number: str
    rule: str
    detail: str
    measure: str
    points: int
    occurred_at: datetime
    appealable: bool
    appeal_deadline: datetime | None
    can_appeal_now: bool
    cannot_appeal_reason: str | None = None


class EvidenceOut(BaseModel):
    id: int
    filename: str
    content_type: str
    size: int
    uploaded_at: datetime


class AppealSummary(BaseModel):
    number: str
    target: str
    penalty_number: str | None
    penalty_rule: str | None
    arbitration_ref: str | None
    reason: str
    reason_label: str
    status: str
    status_label: str
    sla_due_at: datetime
    created_at: datetime
    updated_at: datetime


class AppealDetail(AppealSummary):
    merchant_code: str | None = None
    description: str
    reviewer_note: str
    evidence: list[EvidenceOut]
    timeline: list[TimelineStep]


class AppealCreate(BaseModel):
    penalty_number: str | None = Field(default=None, max_length=40)
    arbitration_ref: str | None = Field(default=None, max_length=60)
    reason: str = Field(description="misjudged / evidence / third_party / buyer_malice / other")
    description: str = Field(max_length=5000)


class AppealReview(BaseModel):
    status: str = Field(description="reviewing / need_more / approved / rejected")
    note: str = Field(default="", max_length=2000)


# --------------------------------------------------------------------------- conversations


class MessageOut(BaseModel):
    id: int
    sender: str
    text: str
    payload: dict | None
    feedback: str | None
    created_at: datetime
    client_id: str | None = None


class ConversationOut(BaseModel):
    id: int
    mode: str
    mode_label: str
    rating: int | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class ConversationDetail(ConversationOut):
    merchant_code: str | None = None
    messages: list[MessageOut]


class FeedbackIn(BaseModel):
    value: str = Field(description="useful / useless")


class RatingIn(BaseModel):
    rating: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=500)


# --------------------------------------------------------------------------- widget


class NotificationOut(BaseModel):
    id: int
    kind: str
    number: str
    status: str
    title: str
    body: str
    created_at: datetime
    read: bool


class MarkReadIn(BaseModel):
    ids: list[int] = Field(max_length=200)


class Suggestion(BaseModel):
    faq_id: int
    question: str

"""Chinese names of enum values, as merchants and agents read them."""

from .models import (
    AppealReason,
    AppealStatus,
    Availability,
    CaseKind,
    CaseStatus,
    ConversationMode,
    HandoffReason,
)

CASE_KIND = {
    CaseKind.withdrawal: "提现", CaseKind.deposit_refund: "保证金退还", CaseKind.invoice: "发票",
    CaseKind.funds_freeze: "货款冻结/解冻", CaseKind.logistics_exemption: "物流判罚豁免", CaseKind.other: "其他咨询",
}
CASE_STATUS = {
    CaseStatus.submitted: "已提交", CaseStatus.processing: "处理中", CaseStatus.need_info: "待补充资料",
    CaseStatus.resolved: "已完成", CaseStatus.rejected: "未通过", CaseStatus.closed: "已关闭",
}
APPEAL_STATUS = {
    AppealStatus.pending: "待审核", AppealStatus.reviewing: "审核中", AppealStatus.need_more: "需补充材料",
    AppealStatus.approved: "通过", AppealStatus.rejected: "驳回", AppealStatus.withdrawn: "已撤回",
}
APPEAL_REASON = {
    AppealReason.misjudged: "判罚有误", AppealReason.evidence: "有新的证据",
    AppealReason.third_party: "第三方原因（物流、系统等）", AppealReason.buyer_malice: "买家恶意行为",
    AppealReason.other: "其他原因",
}
CONVERSATION_MODE = {
    ConversationMode.bot: "智能助手", ConversationMode.waiting_agent: "排队等待人工",
    ConversationMode.agent: "人工服务中", ConversationMode.closed: "已结束",
}
HANDOFF_REASON = {
    HandoffReason.merchant_asked: "商家要求转人工", HandoffReason.not_understood: "连续两次没听懂",
    HandoffReason.upset: "情绪激动", HandoffReason.none_matched: "都不是",
}
AVAILABILITY = {Availability.online: "在线", Availability.busy: "忙碌", Availability.offline: "离线"}

"""FAQs to and from spreadsheets (XLSX and CSV): export, a template, and an import that reports before it writes.

One row per FAQ; similar questions one per line inside their cell; tags separated by 、 or commas. An import
is read and checked whole first (``read_import``: new / changed / unchanged / bad rows, each bad row with its
line and reason); ``apply_import`` writes every new and changed row in the caller's transaction, and only when
no row is bad, so a file goes in whole or not at all, in a few batched statements; the caller hands the FAQs
written to ``KnowledgeBase.index_import``, which embeds them in the background. Values are compared after the
same cleaning the editor applies, so exporting and importing the file again changes nothing.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
import zipfile
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ..models import Faq, FaqStatus
from . import faqs as faq_service
from .errors import Invalid

MAX_BYTES = 10 * 1024 * 1024  # the API takes no larger form (api/body_limits.py, evidence_max_bytes)
MAX_ROWS = 20_000
MAX_UNZIPPED = 200 * 1024 * 1024  # an XLSX is a zip: refuse one that would unpack to more (a zip bomb)
COLUMNS = [("key", "编号"), ("question", "标准问题"), ("similar", "相似问法"), ("answer", "答案"),
           ("category", "分类"), ("tags", "标签"), ("action", "关联动作"), ("status", "状态")]
REQUIRED = ("question", "answer", "category")
STATUS_LABEL = {FaqStatus.draft: "草稿", FaqStatus.published: "已发布", FaqStatus.archived: "已下线"}
ACTION_LABEL = {"check_progress": "查询进度", "file_appeal": "我要申诉", "list_my_cases": "我的工单",
                "request_human": "转人工"}
KEY_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
TAG_SPLIT = re.compile(r"[、,，;；\n]+")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FORMATS = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
           "csv": "text/csv; charset=utf-8"}


# --------------------------------------------------------------------------- export


def faq_row(faq: Faq) -> list[str]:
    return [faq.key, faq.question, "\n".join(faq.similar), faq.answer, faq.category, "、".join(faq.tags or []),
            ACTION_LABEL.get(faq.action or "", faq.action or ""), STATUS_LABEL[faq.status]]


def all_faqs(db: Session) -> list[Faq]:
    return list(db.scalars(select(Faq).options(selectinload(Faq.similar_questions)).order_by(Faq.id)))


def export_faqs(db: Session, fmt: str) -> bytes:
    return write_table([faq_row(f) for f in all_faqs(db)], fmt)


def template(fmt: str) -> bytes:
    example = ["", "示例：保证金什么时候退？", "保证金多久能退回\n退店后保证金怎么退",
               "退店审核通过后 **7 个工作日**内原路退回。\n\n详见 [保证金规则](https://example.com/rules)。",
               "保证金", "退款、退店", "", "草稿"]
    return write_table([example], fmt)


def write_table(rows: list[list[str]], fmt: str) -> bytes:
    header = [label for _, label in COLUMNS]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(header)
        # A cell starting with = + - @ would be run as a formula by a spreadsheet: a quote in front keeps it text
        # (removed again on import).
        writer.writerows([[("'" + c) if c.startswith(FORMULA_START) else c for c in row] for row in rows])
        return ("\ufeff" + out.getvalue()).encode("utf-8")  # the BOM: Excel then reads it as UTF-8
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Alignment, Font

    # Write-only: rows stream out as they are appended, and every data cell shares one style (a normal workbook
    # keeps a styled object per cell: 20.9 s for 5,216 FAQs, against ~1 s).
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("FAQ")
    for letter, width in zip("ABCDEFGH", (22, 36, 40, 60, 12, 16, 10, 8)):
        ws.column_dimensions[letter].width = width
    ws.freeze_panes = "A2"
    bold, wrap = Font(bold=True), Alignment(wrap_text=True, vertical="top")

    def cell(value: str, style: str) -> WriteOnlyCell:
        c = WriteOnlyCell(ws, value)
        if style == "header":
            c.font = bold
        else:
            c.data_type = "s"  # text, never a formula, whatever it starts with
            c.alignment = wrap
        return c

    ws.append([cell(label, "header") for label in header])
    for row in rows:
        ws.append([cell(ILLEGAL_CHARACTERS_RE.sub("", c), "data") for c in row])  # XML holds no control chars
    notes = wb.create_sheet("说明")
    notes.column_dimensions["A"].width = 80
    for line in ("每行一条 FAQ；第一行是列名，不要改动。", "编号：留空表示新建；填写已有编号表示修改该条。",
                 "相似问法：每行一个（单元格内换行）。", "标签：用顿号或逗号分隔。",
                 "关联动作：查询进度、我要申诉、我的工单、转人工，或留空。", "状态：草稿、已发布、已下线；修改时留空表示不变。",
                 "答案支持 Markdown（加粗、列表、链接）。导入前会先显示检查结果，确认后才写入。"):
        notes.append([line])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# --------------------------------------------------------------------------- reading a file


def read_table(data: bytes, filename: str) -> list[list[str]]:
    """The file's rows as text cells (first row: the header); a clear ``Invalid`` for anything unreadable."""
    if not data:
        raise Invalid("文件是空的")
    if len(data) > MAX_BYTES:
        raise Invalid(f"文件太大（上限 {MAX_BYTES // 1024 // 1024} MB）")
    name = (filename or "").lower()
    if data[:4] == b"PK\x03\x04" or name.endswith(".xlsx"):
        return _read_xlsx(data)
    if name.endswith(".xls"):
        raise Invalid("不支持旧版 .xls 文件，请在 Excel 里另存为 .xlsx")
    if name.endswith((".csv", ".txt")) or "." not in name:
        return _read_csv(data)
    raise Invalid("只支持 .xlsx 或 .csv 文件")


def _read_xlsx(data: bytes) -> list[list[str]]:
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            if sum(i.file_size for i in zf.infolist()) > MAX_UNZIPPED:
                raise Invalid("文件解压后太大，请拆分后再导入")
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Invalid:
        raise
    except Exception:  # not a zip, not a workbook, a damaged one: openpyxl raises many kinds
        raise Invalid("无法读取这个 XLSX 文件，请确认它是 Excel 工作簿（.xlsx）") from None
    try:
        ws = wb["FAQ"] if "FAQ" in wb.sheetnames else wb.worksheets[0]
        rows = []
        for row in ws.iter_rows(values_only=True):
            if len(rows) > MAX_ROWS:
                raise Invalid(f"行数太多（上限 {MAX_ROWS} 行），请拆分后再导入")
            rows.append(["" if v is None else _cell_text(v) for v in row[:len(COLUMNS) + 10]])
        return rows
    except Invalid:
        raise
    except Exception:
        raise Invalid("无法读取这个 XLSX 文件的内容") from None
    finally:
        wb.close()


def _cell_text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_csv(data: bytes) -> list[list[str]]:
    if b"\x00" in data[:4096]:
        raise Invalid("这不是文本格式的 CSV 文件（含二进制内容）")
    for encoding in ("utf-8-sig", "gb18030"):  # Excel on Chinese Windows saves CSV as GBK
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise Invalid("CSV 文件的编码无法识别，请另存为 UTF-8")
    try:
        rows = []
        for row in csv.reader(io.StringIO(text, newline="")):
            if len(rows) > MAX_ROWS:
                raise Invalid(f"行数太多（上限 {MAX_ROWS} 行），请拆分后再导入")
            rows.append([_unquote(c) for c in row])
        return rows
    except csv.Error as exc:
        raise Invalid(f"CSV 格式有误：{exc}") from None


def _unquote(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_START) else cell


# --------------------------------------------------------------------------- checking and applying


@dataclass
class Row:
    line: int
    kind: str = "new"  # new | changed | unchanged | bad
    key: str = ""
    question: str = ""
    reason: str = ""
    changes: list[str] = field(default_factory=list)
    values: dict = field(default_factory=dict)
    faq_id: int | None = None


@dataclass
class Report:
    rows: list[Row]
    ignored_columns: list[str]

    def count(self, kind: str) -> int:
        return sum(1 for r in self.rows if r.kind == kind)

    @property
    def ok(self) -> bool:
        return self.count("bad") == 0


def _columns(header: list[str]) -> tuple[dict[str, int], list[str]]:
    by_name = {label: name for name, label in COLUMNS} | {name: name for name, _ in COLUMNS}
    index, ignored = {}, []
    for i, cell in enumerate(header):
        label = cell.strip().lstrip("\ufeff")
        name = by_name.get(label) or by_name.get(label.lower())
        if name and name not in index:
            index[name] = i
        elif label:
            ignored.append(label)
    missing = [dict(COLUMNS)[n] for n in REQUIRED if n not in index]
    if missing:
        raise Invalid("缺少列：" + "、".join(missing) + "（请用模板的列名：" + "、".join(lb for _, lb in COLUMNS) + "）")
    return index, ignored


def _clean_tags(text: str) -> list[str]:
    return list(dict.fromkeys(t.strip() for t in TAG_SPLIT.split(text) if t.strip()))


def _status(text: str) -> FaqStatus | None:
    text = text.strip()
    for status, label in STATUS_LABEL.items():
        if text in (label, status.value):
            return status
    raise ValueError


def _action(text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    for code, label in ACTION_LABEL.items():
        if text in (code, label):
            return code
    raise ValueError


def _current(faq: Faq) -> dict:
    """The FAQ's values cleaned the way an imported row is (so an untouched export compares equal)."""
    return {"question": faq_service.clean_phrasing(faq.question), "answer": faq.answer.strip(),
            "category": faq.category.strip(), "similar": faq_service._clean_similar(faq.question, faq.similar),
            "tags": [t.strip() for t in faq.tags or [] if t.strip()][:10], "action": faq.action, "status": faq.status}


CHANGE_LABEL = {"question": "标准问题", "answer": "答案", "category": "分类", "similar": "相似问法", "tags": "标签",
                "action": "关联动作", "status": "状态"}


def read_import(db: Session, data: bytes, filename: str) -> Report:
    """Read and check the whole file against the database; nothing is written."""
    table = read_table(data, filename)
    while table and not any(c.strip() for c in table[0]):
        table = table[1:]
    if not table:
        raise Invalid("文件里没有内容")
    index, ignored = _columns(table[0])
    existing = {f.key: f for f in all_faqs(db)}
    questions = {faq_service.clean_phrasing(f.question): f.key for f in existing.values()}
    seen_keys: dict[str, int] = {}
    seen_questions: dict[str, int] = {}
    rows: list[Row] = []
    for line, cells in enumerate(table[1:], start=2):
        def get(name: str, cells=cells) -> str:
            i = index.get(name)
            return cells[i] if i is not None and i < len(cells) else ""
        if not any(c.strip() for c in cells):
            continue
        row = Row(line=line, key=get("key").strip(), question=faq_service.clean_phrasing(get("question")))
        rows.append(row)
        try:
            row.values = _check(row, get)
        except ValueError as exc:
            row.kind, row.reason = "bad", str(exc)
            continue
        if row.key:
            if row.key in seen_keys:
                row.kind, row.reason = "bad", f"编号与第 {seen_keys[row.key]} 行重复"
                continue
            seen_keys[row.key] = line
        if row.question in seen_questions:
            row.kind, row.reason = "bad", f"标准问题与第 {seen_questions[row.question]} 行重复"
            continue
        seen_questions[row.question] = line
        faq = existing.get(row.key) if row.key else None
        if faq is None:
            owner = questions.get(row.question)
            if owner is not None and owner != row.key:
                row.kind, row.reason = "bad", f"标准问题与已有 FAQ（编号 {owner}）相同；要修改它请填写编号"
                continue
            if row.values["status"] is None:
                row.values["status"] = FaqStatus.draft
            row.kind = "new"
            continue
        row.faq_id = faq.id
        if row.values["status"] is None:
            row.values["status"] = faq.status
        current = _current(faq)
        row.changes = [CHANGE_LABEL[k] for k in CHANGE_LABEL
                       if (set(current[k]) != set(row.values[k]) if k == "similar" else current[k] != row.values[k])]
        row.kind = "changed" if row.changes else "unchanged"
    return Report(rows, ignored)


def _check(row: Row, get) -> dict:
    """The row's cleaned values; ValueError with the reason (in Chinese) for a bad row."""
    if row.key and not KEY_RE.match(row.key):
        raise ValueError("编号只能包含字母、数字、点、下划线和连字符，最长 64 个字符")
    answer, category = get("answer").strip(), get("category").strip()
    missing = [label for label, value in (("标准问题", row.question), ("答案", answer), ("分类", category))
               if not value]
    if missing:
        raise ValueError("缺少" + "、".join(missing))
    if len(row.question) > 200:
        raise ValueError("标准问题超过 200 字")
    if len(answer) > 5000:
        raise ValueError("答案超过 5000 字")
    if len(category) > 50:
        raise ValueError("分类超过 50 字")
    lines = get("similar").splitlines()
    try:
        similar = faq_service._clean_similar(row.question, lines)
    except faq_service.Invalid as exc:
        raise ValueError(exc.detail) from None
    if len(similar) > 100:
        raise ValueError(f"相似问法太多（{len(similar)} 条，上限 100 条）")
    tags = _clean_tags(get("tags"))
    if len(tags) > 10 or any(len(t) > 30 for t in tags):
        raise ValueError("标签最多 10 个，每个不超过 30 字")
    try:
        action = _action(get("action"))
    except ValueError:
        raise ValueError("关联动作只能是：" + "、".join(ACTION_LABEL.values()) + "，或留空") from None
    status_text = get("status").strip()
    try:
        status = _status(status_text) if status_text else None
    except ValueError:
        raise ValueError("状态只能是：草稿、已发布、已下线") from None
    return {"question": row.question, "answer": answer, "category": category, "similar": similar, "tags": tags,
            "action": action, "status": status}


def apply_import(db: Session, report: Report, editor: str) -> dict[int, int]:
    """Write every new and changed row in the caller's transaction; returns the FAQs written, each with the
    knowledge-base revision of its change (for the index job and the other instances).

    Refuses (``Invalid``) when any row is bad: all or nothing. The FAQs to change are locked first, in one
    query in id order, so a concurrent single edit waits instead of deadlocking on the knowledge base's revision
    row. The rows are written in batches: one flush for every FAQ and similar question, then one for every
    version row and change, with one bump of the revision (``faq_service.add_versions``)."""
    if not report.ok:
        raise Invalid(f"有 {report.count('bad')} 行有问题，没有导入任何内容；请改正后重新导入")
    todo = [r for r in report.rows if r.kind in ("new", "changed")]
    if not todo:
        return {}
    changed_ids = sorted(r.faq_id for r in todo if r.faq_id is not None)
    locked = {}
    if changed_ids:
        locked = {f.id: f for f in db.scalars(select(Faq).where(Faq.id.in_(changed_ids)).order_by(Faq.id)
                                              .options(selectinload(Faq.similar_questions)).with_for_update())}
    written = []
    for row in todo:
        v = row.values
        faq = locked.get(row.faq_id) if row.faq_id is not None else None
        if row.faq_id is not None and faq is None:
            raise Invalid(f"第 {row.line} 行的 FAQ 已被删除，请重新导入")
        written.append(faq_service.fill_faq(db, faq, editor=editor, question=v["question"], answer=v["answer"],
                                            category=v["category"], similar=v["similar"], tags=v["tags"],
                                            action=v["action"], status=v["status"],
                                            key=row.key or f"faq-{uuid.uuid4().hex[:16]}"))
    db.flush()
    revisions = faq_service.add_versions(db, written, editor, note="导入")
    return {faq.id: revision for faq, revision in zip(written, revisions)}

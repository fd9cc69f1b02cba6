"""FAQ spreadsheets (api/services/faq_io.py): what the fuzzing of the export found."""

import io

from openpyxl import load_workbook

from api.services import faq_io


def test_an_faq_holding_control_characters_still_exports_as_xlsx():
    # XML (so XLSX) cannot hold C0 controls: openpyxl refused the whole export (a 500 for every editor)
    row = ["faq-1", "保证金\x02怎么退", "押金\x12怎么退\n保证金退回", "答案\x00", "保证金", "", "", "草稿"]
    sheet = load_workbook(io.BytesIO(faq_io.write_table([row], "xlsx")))["FAQ"]
    assert [c.value for c in sheet[2]][:4] == ["faq-1", "保证金怎么退", "押金怎么退\n保证金退回", "答案"]
    assert "保证金\x02怎么退" in faq_io.write_table([row], "csv").decode("utf-8")  # CSV keeps the text as it is

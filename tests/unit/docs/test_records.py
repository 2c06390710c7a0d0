"""docs/reproducibility.md's "identical where" table is what ``python src/verify.py --table`` makes
from the committed records (reproducibility/), so a new CPU's record or a changed one shows up as
a failing test until the page is updated (paste the command's output)."""

from __future__ import annotations

from s2s.common.verification import identical_where

from conftest import ROOT


def test_the_identical_where_table_is_the_records_table() -> None:
    page = (ROOT / "docs/reproducibility.md").read_text(encoding="utf-8")
    table = identical_where()
    assert table.splitlines()[0] in page, "the identical-where table is gone from docs/reproducibility.md"
    assert table in page, "docs/reproducibility.md's identical-where table differs from `python src/verify.py --table`"

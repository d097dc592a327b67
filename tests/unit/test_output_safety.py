"""What a note can smuggle into an export or a report stays inert text."""

from __future__ import annotations

import base64
import csv
import hashlib
import io

from api.routers.exports import _csv, csv_cell
from peerlearn.readside import report as rp


def test_formula_leading_cells_are_neutralised() -> None:
    for bad in (
        '=HYPERLINK("http://x","y")',
        "+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(A1)",
        "\tx",
        "\rx",
    ):
        assert csv_cell(bad) == "'" + bad
    assert csv_cell("plain text") == "plain text"
    assert csv_cell(-0.5) == -0.5 and csv_cell(3) == 3  # numbers are not formulas
    assert csv_cell(None) == "" and csv_cell(["=a"]) == '["=a"]'
    rows = list(csv.reader(io.StringIO(_csv([{"t": "=1+1", "n": -1}], ["t", "n"]))))
    assert rows == [["t", "n"], ["'=1+1", "-1"]]


def _report(text: str) -> rp.Report:
    src = rp.Source("<b>org</b>", "m1", "c1", "n1", "2026-01-02", "en")
    practice = rp.Practice("s1", text, "en", "best_practice", None, "t1", "x", 1, 1, [src])
    theme = rp.ThemeSection(
        "t1", "<i>label</i>", ["<kp>"], 1, {"en": 1}, 1, 1, 1, False, [practice]
    )
    return rp.Report(
        title="<script>alert(1)</script>",
        cycle_id="c1",
        programme_id="p1",
        summary=None,
        mined=rp.MinedTotals(1, 1, 1, 1, 1),
        themes=[theme],
        recommendations=[rp.RecommendationGroup("funders", "For funders", [practice])],
        action_items=[rp.ActionItem("a1", "<u>o</u>", "<img src=x onerror=alert(1)>", None, None)],
    )


def test_markdown_escapes_raw_html_and_folds_lines() -> None:
    md = rp.render_markdown(_report("<script>x()</script>\n# not a heading"))
    assert "<script" not in md and "<img" not in md and "<b>" not in md and "<i>" not in md
    assert "&lt;script&gt;x()&lt;/script&gt; # not a heading" in md
    assert "\n# not a heading" not in md


def test_html_escapes_and_its_csp_allows_only_its_own_style() -> None:
    page = rp.render_html(_report("<script>x()</script>"))
    assert "<script" not in page and "<img" not in page
    digest = base64.b64encode(hashlib.sha256(rp._CSS.encode()).digest()).decode()
    assert f"<style>{rp._CSS}</style>" in page
    assert f"style-src 'sha256-{digest}'" in rp.HTML_CSP
    assert rp.HTML_CSP.startswith("default-src 'none'") and "script-src" not in rp.HTML_CSP

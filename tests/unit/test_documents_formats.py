"""Each supported format comes out as the segmenter's structure: ``#`` headings,
``- item`` list lines, paragraphs apart; and the segmenter then makes each
list item a statement of its own under its heading."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from document_samples import docx_bytes, eml_bytes, odt_bytes, pdf_bytes  # noqa: E402

from nlp.segment import Segmenter  # noqa: E402
from peerlearn.documents import extract  # noqa: E402

ITEMS = ["Matchmaking with researchers works well", "Share the onboarding template"]


def test_docx_keeps_heading_list_and_language() -> None:
    data = docx_bytes("Visit to Växa", ["We saw how they match firms."], ITEMS, language="sv-SE")
    doc = extract("notes.docx", "application/octet-stream", data)
    assert doc.format == "docx"
    assert doc.language == "sv"
    assert doc.sha256 == hashlib.sha256(data).hexdigest()
    assert doc.text == (
        "# Visit to Växa\n\nWe saw how they match firms.\n\n"
        "- Matchmaking with researchers works well\n- Share the onboarding template"
    )
    segs = Segmenter().split(doc.text, "en")
    assert [s.text for s in segs][-2:] == ITEMS
    assert all(s.heading == "Visit to Växa" for s in segs)


def test_odt_keeps_heading_and_list() -> None:
    doc = extract("notes.odt", None, odt_bytes("Wizyta w Łodzi", ["Dobra wizyta."], ITEMS))
    assert doc.format == "odt"
    assert doc.text.startswith("# Wizyta w Łodzi\n\nDobra wizyta.\n\n- Matchmaking")


def test_pdf_text_layer_bullets_become_items_and_pages_counted() -> None:
    data = pdf_bytes([["Visit to Vaxa", "• Matchmaking works well", "• Share it"], ["Page two."]])
    doc = extract("notes.pdf", "application/pdf", data)
    assert (doc.format, doc.pages) == ("pdf", 2)
    assert "- Matchmaking works well\n- Share it" in doc.text
    assert "Page two." in doc.text


def test_html_headings_lists_and_no_markup() -> None:
    html = (
        b"<html lang='de'><head><style>p {color: red}</style></head><body>"
        b"<h2>Besuch</h2><p>Wir haben <b>viel</b> gelernt.</p>"
        b"<ul><li>Punkt eins</li><li>Punkt zwei</li></ul><ol><li>Erstens</li></ol>"
        b"<script>alert(1)</script></body></html>"
    )
    doc = extract("n.html", "text/html", html)
    assert doc.language == "de"
    assert "## Besuch" in doc.text
    assert "- Punkt eins\n- Punkt zwei" in doc.text and "- Erstens" in doc.text
    assert "<" not in doc.text and "alert" not in doc.text and "**" not in doc.text


def test_markdown_and_text_normalise_bullets() -> None:
    md = b"# Title\n\n* first point here\n+ second point\n1. third point\n"
    assert extract("n.md", None, md).text == (
        "# Title\n\n- first point here\n- second point\n- third point"
    )
    txt = "Line one.\r\n\r\n\r\n\r\n• bullet\r\n".encode()
    doc = extract("n.txt", "text/plain", txt)
    assert (doc.format, doc.text) == ("text", "Line one.\n\n- bullet")


def test_utf8_bom_is_dropped() -> None:
    assert extract("n.txt", None, b"\xef\xbb\xbfHello there").text == "Hello there"


def test_eml_subject_body_and_supported_attachment() -> None:
    data = eml_bytes(
        "Notes from the visit",
        "We learned a lot.\n\n* item one here\n* item two here",
        attachment=("minutes.pdf", pdf_bytes([["Attached line of text."]])),
    )
    doc = extract("mail.eml", "message/rfc822", data)
    assert doc.format == "eml"
    assert doc.text == (
        "# Notes from the visit\n\nWe learned a lot.\n\n- item one here\n- item two here"
        "\n\n# minutes.pdf\n\nAttached line of text."
    )


def test_eml_html_only_body_and_image_attachment_ignored() -> None:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@x.example", "b@y.example", "Minutes"
    msg.set_content("<h1>Minutes</h1><ul><li>one two three</li></ul>", subtype="html")
    msg.add_attachment(b"\x89PNG\r\n\x1a\n..", maintype="image", subtype="png", filename="p.png")
    doc = extract("m.eml", None, msg.as_bytes())
    assert doc.text == "# Minutes\n\n# Minutes\n\n- one two three"


def test_no_claim_detects_from_bytes() -> None:
    assert extract(None, None, pdf_bytes([["Some text here."]])).format == "pdf"
    assert extract("upload", None, docx_bytes("T", ["p"], [])).format == "docx"
    assert extract(None, "application/octet-stream", b"plain words").format == "text"


def test_parser_control_characters_are_dropped_from_binary_formats_only() -> None:
    """pypdf passes NUL and other C0 codes of unmapped glyphs through: artefacts of
    a binary format are dropped; a text file keeps its own (the note rule refuses)."""
    doc = extract("a.pdf", None, pdf_bytes([["Hello\x01 world\x00 here."]]))
    assert doc.text == "Hello world here."
    assert extract("a.txt", None, b"bell \x07 here").text == "bell \x07 here"

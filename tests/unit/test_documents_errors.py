"""Every file that cannot become a note is refused with its own error and the
HTTP status it stands for: wrong type, encrypted, scanned, too big, too long,
damaged, undecodable."""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from document_samples import docx_bytes, encrypted_pdf_bytes, odt_bytes, pdf_bytes  # noqa: E402

from peerlearn import documents as d  # noqa: E402


def _err(name: str | None, data: bytes, **kw: int) -> d.DocumentError:
    with pytest.raises(d.DocumentError) as exc:
        d.extract(name, None, data, **kw)
    return exc.value


def test_scanned_pdf_has_no_text_layer() -> None:
    e = _err("scan.pdf", pdf_bytes([[], []]))
    assert isinstance(e, d.NoTextLayer) and e.status == 422
    assert "scanned PDF: no text layer" in e.message


def test_encrypted_pdf() -> None:
    e = _err("secret.pdf", encrypted_pdf_bytes(["Confidential notes here."]))
    assert isinstance(e, d.EncryptedDocument) and e.status == 422


def test_too_many_pages_and_too_large() -> None:
    e = _err("long.pdf", pdf_bytes([["x"]] * 6), max_pages=5)
    assert isinstance(e, d.TooManyPages) and e.status == 413
    e = _err("big.txt", b"a" * 101, max_bytes=100)
    assert isinstance(e, d.DocumentTooLarge) and e.status == 413


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("notes.docx", b"just some text"),
        ("notes.pdf", b"just some text"),
        ("notes.odt", docx_bytes("T", ["p"], [])),
        ("notes.docx", odt_bytes("T", ["p"], [])),
        ("notes.txt", pdf_bytes([["hello"]])),
        ("notes.md", docx_bytes("T", ["p"], [])),
        ("mail.eml", b"Just a note, not a mail.\n"),
    ],
)
def test_content_must_match_the_extension(name: str, data: bytes) -> None:
    e = _err(name, data)
    assert isinstance(e, d.DocumentTypeMismatch) and e.status == 415
    assert "content is" in e.message


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("photo.png", b"\x89PNG\r\n\x1a\n", ".png files are not supported"),
        ("notes.txt", b"\x89PNG\r\n\x1a\n....", "PNG image"),
        ("old.txt", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "legacy or password-protected"),
        ("blob.txt", b"abc\x00def", "binary data"),
        (None, b"MZ\x90\x00", "Windows executable"),
    ],
)
def test_unsupported_types(name: str | None, data: bytes, words: str) -> None:
    e = _err(name, data)
    assert isinstance(e, d.UnsupportedDocument) and e.status == 415
    assert words in e.message


def test_zip_that_is_not_a_document_and_a_spreadsheet() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hi")
    assert isinstance(_err(None, buf.getvalue()), d.UnsupportedDocument)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
    e = _err("sheet.odt", buf.getvalue())
    assert isinstance(e, d.UnsupportedDocument) and "spreadsheet" in e.message


def test_zip_bomb_is_too_large() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "0" * 3_000_000)
    data = buf.getvalue()
    e = _err("bomb.docx", data, max_bytes=max(len(data), 100_000))
    assert isinstance(e, d.DocumentTooLarge)


def test_damaged_files_are_corrupt_not_crashes() -> None:
    assert isinstance(_err("x.pdf", b"%PDF-1.4 garbage"), d.CorruptDocument)
    good = docx_bytes("T", ["p"], [])
    assert isinstance(_err("x.docx", good[:200]), d.CorruptDocument)


def test_undecodable_text_and_empty_file() -> None:
    e = _err("latin1.txt", "Växa".encode("latin-1"))
    assert isinstance(e, d.UndecodableText) and "UTF-8" in e.message
    assert isinstance(_err("empty.txt", b""), d.UndecodableText)


def test_html_declared_charset_is_honoured() -> None:
    html = '<meta charset="iso-8859-1"><p>Växa</p>'.encode("latin-1")
    assert d.extract("a.html", None, html).text == "Växa"

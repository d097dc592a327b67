"""Documents generated in the tests (no binary fixtures): DOCX through
python-docx, ODT through odfpy, PDF written object by object (a text layer in
Helvetica, a blank "scanned" page, an encrypted copy through pypdf), HTML and
e-mail through the standard library."""

from __future__ import annotations

import io
from email.message import EmailMessage


def docx_bytes(title: str, paragraphs: list[str], items: list[str], language: str = "en") -> bytes:
    import docx

    d = docx.Document()
    d.core_properties.language = language
    d.add_heading(title, 1)
    for p in paragraphs:
        d.add_paragraph(p)
    for it in items:
        d.add_paragraph(it, style="List Bullet")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def odt_bytes(title: str, paragraphs: list[str], items: list[str]) -> bytes:
    from odf.opendocument import OpenDocumentText
    from odf.text import H, List, ListItem, P

    doc = OpenDocumentText()
    doc.text.addElement(H(outlinelevel=1, text=title))
    for p in paragraphs:
        doc.text.addElement(P(text=p))
    lst = List()
    for it in items:
        li = ListItem()
        li.addElement(P(text=it))
        lst.addElement(li)
    doc.text.addElement(lst)
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def _pdf_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_bytes(pages: list[list[str]]) -> bytes:
    """A PDF whose pages carry these lines as real text (WinAnsi Helvetica, so
    Windows-1252 characters only); an empty list of lines makes a page with no text
    layer, like a scan."""
    objects: list[bytes] = []
    n_pages = len(pages)
    font_id = 3 + 2 * n_pages
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    for i, lines in enumerate(pages):
        content_id = 4 + 2 * i
        objects.append(
            (
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842]"
                f" /Resources << /Font << /F1 {font_id} 0 R >> >> /Contents {content_id} 0 R >>"
            ).encode()
        )
        ops = ["BT", "/F1 11 Tf", "14 TL", "56 780 Td"]
        for line in lines:
            ops.append(f"({_pdf_escape(line)}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("cp1252") if lines else b"0 0 1 rg 0 0 10 10 re f"
        objects.append(
            b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream"
        )
    objects.append(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


def encrypted_pdf_bytes(lines: list[str], password: str = "secret") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes([lines]))))
    writer.encrypt(user_password=password, owner_password=password, algorithm="AES-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def eml_bytes(
    subject: str, body: str, *, html: bool = False, attachment: tuple[str, bytes] | None = None
) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Anna <anna@vaxa.example>"
    msg["To"] = "notes@peerlearn.example"
    msg["Subject"] = subject
    msg["Date"] = "Tue, 03 Mar 2026 10:00:00 +0100"
    if html:
        msg.set_content("plain version")
        msg.add_alternative(body, subtype="html")
        msg.make_mixed()
    else:
        msg.set_content(body)
    if attachment is not None:
        name, data = attachment
        maintype, subtype = {
            ".docx": ("application", "vnd.openxmlformats-officedocument.wordprocessingml.document"),
            ".pdf": ("application", "pdf"),
            ".png": ("image", "png"),
        }[name[name.rfind(".") :]]
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()

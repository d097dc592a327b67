"""Meeting notes that arrive as documents: read the text out of a file.

Partners keep their meeting notes as Word or LibreOffice files, PDFs, web pages
and e-mails; :func:`extract` turns any of them into the one shape the
segmenter (``nlp/segment.py``) reads best: headings as ``# Heading`` lines,
bullet and numbered list items as ``- item`` lines, paragraphs separated by
blank lines. Structure matters because the segmenter makes each list item a
statement of its own and keeps a heading as the context of the items under it;
flattening a document to running prose would merge unrelated points.

Every format is read by a maintained parser (python-docx, odfpy, pypdf with
pdfminer.six as the fallback, html2text, the standard library's ``email``),
never by hand-rolled regexes over markup. The real type is decided by the
file's own bytes (magic numbers), not by what the client says: a file whose
content is not what its extension or content type claims is refused, so a
renamed executable or an image never reaches a parser that would choke on it.

Errors are :class:`DocumentError` subclasses carrying the HTTP status they
stand for (413, 415 or 422) and a message a partner can act on; this module
knows nothing about HTTP beyond that number (``peerlearn/`` never imports
``api/``). The extracted text is *not* checked for note rules here (length,
control characters): callers pass it through the one note-text validation
path like every other note body.
"""

from __future__ import annotations

import codecs
import email
import email.policy
import hashlib
import io
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from functools import lru_cache
from pathlib import PurePath
from typing import Any
from xml.sax import SAXException

DEFAULT_MAX_BYTES = 10_000_000
DEFAULT_MAX_PAGES = 200
#: Uncompressed size of a docx/odt as a multiple of the size limit: a few
#: kilobytes of zip can inflate to gigabytes (zip bomb), and parsers read it all.
MAX_INFLATION = 20


# ------------------------------------------------------------------ errors


class DocumentError(Exception):
    """A file that cannot become a note; ``status`` is the HTTP status it maps to."""

    status = 422

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedDocument(DocumentError):
    """Not one of the formats we read (or a binary file with a text extension)."""

    status = 415


class DocumentTypeMismatch(DocumentError):
    """The bytes say one type, the file name or content type another."""

    status = 415


class DocumentTooLarge(DocumentError):
    status = 413


class TooManyPages(DocumentError):
    status = 413


class EncryptedDocument(DocumentError):
    status = 422


class NoTextLayer(DocumentError):
    """A PDF made of page images (a scan): there is no text to read without OCR."""

    status = 422


class UndecodableText(DocumentError):
    status = 422


class EmptyDocument(DocumentError):
    """The file is readable but holds no text at all."""

    status = 422


class CorruptDocument(DocumentError):
    """The bytes look like the format but its parser cannot read them."""

    status = 422


#: What the parsers (zipfile, python-docx/lxml, odfpy, pypdf, pdfminer.six) raise
#: on damaged input, named rather than caught blanket: zip and deflate damage,
#: XML syntax, their own assertions, arithmetic on garbage numbers, and runaway
#: recursion or unimplemented variants (RuntimeError covers both). Measured by
#: mutating valid files (random bytes, truncation) until nothing else came out.
_DAMAGED: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    struct.error,
    EOFError,
    ValueError,
    LookupError,
    TypeError,
    AttributeError,
    AssertionError,
    ArithmeticError,
    RuntimeError,
    SyntaxError,
    SAXException,
)


# ------------------------------------------------------------------ result


@dataclass(frozen=True)
class ExtractedDocument:
    """The note text of one file, and what is known about the file itself."""

    text: str
    format: str  # docx | odt | pdf | markdown | text | html | eml (the source format)
    pages: int | None  # PDFs (and docx/odt when the file says); None when unknown
    sha256: str  # of the original bytes: the content address of the stored original
    media_type: str  # the canonical media type of the detected format, for downloads
    language: str | None = None  # declared by the document itself (docx/odt/html/eml)


FORMATS = ("docx", "odt", "pdf", "markdown", "text", "html", "eml")

MEDIA_TYPES = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "odt": "application/vnd.oasis.opendocument.text",
    "pdf": "application/pdf",
    "markdown": "text/markdown; charset=utf-8",
    "text": "text/plain; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "eml": "message/rfc822",
}

_EXTENSIONS = {
    ".docx": "docx",
    ".odt": "odt",
    ".pdf": "pdf",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".html": "html",
    ".htm": "html",
    ".eml": "eml",
}

_CONTENT_TYPES = {
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.oasis.opendocument.text": "odt",
    "application/pdf": "pdf",
    "application/x-pdf": "pdf",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/plain": "text",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "message/rfc822": "eml",
}

_TEXT_FAMILY = frozenset({"markdown", "text", "html"})

# Other well-known magic numbers, only to name what was sent in the error.
_OTHER_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy or password-protected Office file"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"{\\rtf", "an RTF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"MZ", "a Windows executable"),
    (b"\x7fELF", "an ELF executable"),
)


# ------------------------------------------------------------------ language


@lru_cache(maxsize=32)
def _detector(codes: tuple[str, ...]) -> Any:
    """A low-accuracy lingua detector over ``codes`` (every EU language when
    fewer than two are usable): small models loaded lazily, enough for a whole
    document, unlike the miner's preloaded high-accuracy detector, which the
    API and CLI processes must not carry (the miner still identifies each
    statement's language itself)."""
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    from nlp.langid import EU_LANGUAGES

    known = [c for c in codes if hasattr(IsoCode639_1, c.upper())]
    if len(known) < 2:
        known = [c for c in EU_LANGUAGES if hasattr(IsoCode639_1, c.upper())]
    isos = [getattr(IsoCode639_1, c.upper()) for c in known]
    return LanguageDetectorBuilder.from_iso_codes_639_1(*isos).with_low_accuracy_mode().build()


def guess_language(text: str, candidates: tuple[str, ...] = ()) -> str | None:
    """The ISO 639-1 code of ``text``'s language among ``candidates`` (any EU
    language when empty), or None when it cannot be told."""
    codes = tuple(sorted({c.lower() for c in candidates if c}))
    found = _detector(codes).detect_language_of(text[:5000])
    return None if found is None else str(found.iso_code_639_1.name.lower())


# ------------------------------------------------------------------ the entry point


def extract(
    filename: str | None,
    content_type: str | None,
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pages: int = DEFAULT_MAX_PAGES,
) -> ExtractedDocument:
    """The structured note text of one uploaded file.

    ``filename``'s extension (else ``content_type``) is what the client claims;
    the bytes decide what the file is, and the two must agree. Raises a
    :class:`DocumentError` subclass for anything that cannot become a note.
    """
    if len(data) > max_bytes:
        raise DocumentTooLarge(
            f"the file is {len(data)} bytes; documents may be at most {max_bytes} bytes"
        )
    if not data:
        raise UndecodableText("the file is empty")
    claimed = claimed_format(filename, content_type)
    detected = detect_format(data, claimed)
    if claimed is not None and not _compatible(claimed, detected):
        raise DocumentTypeMismatch(
            f"the file is named or labelled as {claimed} but its content is {detected}"
        )
    fmt = claimed if claimed in _TEXT_FAMILY and detected == "text" else detected
    reader = _READERS[fmt]
    try:
        text, pages, language = reader(data, max_bytes, max_pages)
    except _DAMAGED as exc:
        raise CorruptDocument(
            f"the {fmt} file cannot be read: {exc or type(exc).__name__}"
        ) from exc
    if fmt in _BINARY_FORMATS:
        text = _ARTEFACTS.sub("", text)
    text = tidy(text)
    if not text.strip():
        raise EmptyDocument("the document is empty: it contains no text")
    return ExtractedDocument(
        text=text,
        format=fmt,
        pages=pages,
        sha256=hashlib.sha256(data).hexdigest(),
        media_type=MEDIA_TYPES[fmt],
        language=language,
    )


def claimed_format(filename: str | None, content_type: str | None) -> str | None:
    """What the client says the file is: the extension first (browsers label
    many files ``application/octet-stream``), then the content type; None when
    neither names a format we read. An extension we do not read is refused."""
    if filename:
        suffix = PurePath(filename).suffix.lower()
        if suffix:
            fmt = _EXTENSIONS.get(suffix)
            if fmt is None:
                raise UnsupportedDocument(
                    f"{suffix} files are not supported; upload .docx, .odt, .pdf, .md,"
                    " .txt, .html or .eml"
                )
            return fmt
    ctype = (content_type or "").split(";")[0].strip().lower()
    return _CONTENT_TYPES.get(ctype)


def detect_format(data: bytes, claimed: str | None = None) -> str:
    """The format the bytes are, by magic number: docx, odt, pdf, eml or text.

    Plain text is the fallback only for bytes that decode as text; known
    binary signatures and NUL bytes are :class:`UnsupportedDocument`.
    """
    if data.startswith(b"PK\x03\x04"):
        return _zip_format(data)
    if b"%PDF-" in data[:1024]:
        return "pdf"
    for magic, what in _OTHER_MAGIC:
        if data.startswith(magic):
            raise UnsupportedDocument(f"the file is {what}, which cannot be read as a note")
    if b"\x00" in data[:8192]:
        raise UnsupportedDocument("the file is binary data, not a document we can read")
    if claimed == "eml" and _looks_like_rfc822(data):
        return "eml"
    if claimed is None and _looks_like_rfc822(data):
        return "eml"
    return "text"


def _zip_format(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = set(z.namelist())
            if "mimetype" in names:
                mime = z.read("mimetype")[:100].strip()
                if mime == b"application/vnd.oasis.opendocument.text":
                    return "odt"
                raise UnsupportedDocument(
                    f"the file is an OpenDocument of type {mime.decode('ascii', 'replace')!r};"
                    " only text documents (.odt) are read"
                )
            if "[Content_Types].xml" in names:
                if "word/document.xml" in names:
                    return "docx"
                raise UnsupportedDocument(
                    "the file is an Office document that is not a Word document (.docx)"
                )
    except _DAMAGED as exc:
        raise CorruptDocument(
            f"the file looks like a ZIP container but is damaged: {exc or type(exc).__name__}"
        ) from exc
    raise UnsupportedDocument("the file is a ZIP archive, not a .docx or .odt document")


_HEADER_LINE = re.compile(rb"^[!-9;-~]+:[ \t]")
_MAIL_HEADERS = frozenset(
    {b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"received"}
)


def _looks_like_rfc822(data: bytes) -> bool:
    """RFC 822 header lines up to the first blank line, naming at least two of
    the headers every mail has (so a note starting "Note: ..." is not a mail)."""
    seen: set[bytes] = set()
    for line in data[:16384].splitlines():
        if not line.strip():
            break
        if line[:1] in (b" ", b"\t"):
            continue  # folded continuation of the previous header
        if not _HEADER_LINE.match(line):
            return False
        seen.add(line.split(b":", 1)[0].strip().lower())
    return len(seen & _MAIL_HEADERS) >= 2


def _compatible(claimed: str, detected: str) -> bool:
    if claimed == detected:
        return True
    # A text file may begin with header-like lines; a text claim only needs text.
    return claimed in _TEXT_FAMILY and detected in ("text", "eml")


# ------------------------------------------------------------------ normalisation

_BULLET_LINE = re.compile(r"^(?P<indent>[ \t]*)(?:[*•‣◦▪●·+–—]|-(?=\s))[ \t]+(?P<body>\S.*)$")
_NUMBERED_LINE = re.compile(r"^(?P<indent>[ \t]*)\(?(?:\d{1,3}|[a-z])[.)][ \t]+(?P<body>\S.*)$")
_MANY_BLANKS = re.compile(r"\n{3,}")
# Control characters a parser of a binary format leaves in its output (pypdf
# emits NUL and other C0 codes for glyphs of CID fonts it cannot map): parser
# artefacts, not the author's text, so they are dropped. Text formats keep
# theirs, and the note-text rule refuses them (api.limits.validate_note_text).
_BINARY_FORMATS = frozenset({"docx", "odt", "pdf"})
_ARTEFACTS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Layout characters some extractors emit between pages and soft line breaks.
_LAYOUT = str.maketrans({"\x0c": "\n\n", "\x0b": "\n", "\u2028": "\n", "\u2029": "\n\n"})


def tidy(text: str) -> str:
    """One newline style, no trailing spaces, at most one blank line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [ln.rstrip() for ln in text.split("\n")]
    return _MANY_BLANKS.sub("\n\n", "\n".join(lines)).strip("\n")


def list_items(text: str) -> str:
    """Bullet and numbered list lines as ``- item`` (the one list form the
    segmenter and the analyst pages both read)."""
    out = []
    for line in text.split("\n"):
        m = _BULLET_LINE.match(line) or _NUMBERED_LINE.match(line)
        out.append(f"- {m.group('body').strip()}" if m else line)
    return "\n".join(out)


def _squash(raw: str) -> str:
    """One line of text: layout characters, tabs and runs of white space as one space."""
    return " ".join(raw.translate(_LAYOUT).replace("\t", " ").split())


class _Blocks:
    """The structure rules of the word-processor readers (docx, odt), once:
    they walk their own document trees and say what each block is; this turns
    the blocks into the segmenter's text. Headings become ``# Heading`` lines
    (level 1 to 6), list items and table rows ``- item`` lines that stay
    together while the same kind continues, everything else a paragraph after
    a blank line; a block with no text leaves no trace."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._prev = ""

    def heading(self, level: int | str, raw: str) -> None:
        """A heading of outline ``level`` (an empty level counts as 1)."""
        if text := _squash(raw):
            self._emit("heading", f"{'#' * min(6, max(1, int(level or 1)))} {text}")

    def item(self, raw: str) -> None:
        if text := _squash(raw):
            self._emit("item", f"- {text}")

    def para(self, raw: str) -> None:
        if text := _squash(raw):
            self._emit("para", text)

    def row(self, cells: Iterable[str]) -> None:
        """A table row: its non-empty cells joined by `` | `` (a merged cell once)."""
        if text := _squash(" | ".join(c for c in _unique(c.strip() for c in cells) if c)):
            self._emit("row", f"- {text}")

    def _emit(self, kind: str, line: str) -> None:
        if self._lines and not (kind in ("item", "row") and self._prev == kind):
            self._lines.append("")
        self._lines.append(line)
        self._prev = kind

    def text(self) -> str:
        return "\n".join(self._lines)


# ------------------------------------------------------------------ readers

Reader = Callable[[bytes, int, int], tuple[str, int | None, str | None]]


def _check_inflation(data: bytes, max_bytes: int) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        total = sum(i.file_size for i in z.infolist())
    if total > max_bytes * MAX_INFLATION:
        raise DocumentTooLarge(
            f"the document unpacks to {total} bytes; at most {max_bytes * MAX_INFLATION} are read"
        )


def _check_pages(pages: int | None, max_pages: int) -> None:
    if pages is not None and pages > max_pages:
        raise TooManyPages(f"the document has {pages} pages; at most {max_pages} are accepted")


def _language(code: str | None) -> str | None:
    if not code:
        return None
    code = code.strip().lower().replace("_", "-").split("-")[0]
    return code if 2 <= len(code) <= 3 and code.isalpha() else None


def _read_docx(data: bytes, max_bytes: int, max_pages: int) -> tuple[str, int | None, str | None]:
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    _check_inflation(data, max_bytes)
    try:
        document = docx.Document(io.BytesIO(data))
    except PackageNotFoundError as exc:
        raise CorruptDocument(f"the .docx file cannot be read: {exc}") from exc
    pages = _docx_pages(data)
    _check_pages(pages, max_pages)

    # Style names by id, once: ``Paragraph.style`` looks the style up through
    # the whole styles part on every call (8 s for 2,500 paragraphs).
    names = {st.style_id: st.name or "" for st in document.styles}

    out = _Blocks()

    def paragraph(p: Paragraph) -> None:
        style = names.get(p._p.style or "", "")
        ppr = p._p.pPr
        if style == "Title":
            out.heading(1, p.text)
        elif style.startswith("Heading"):
            level = style.removeprefix("Heading").strip()
            out.heading(level if level.isdigit() else 1, p.text)
        elif "List" in style or (ppr is not None and ppr.numPr is not None):
            out.item(p.text)
        else:
            out.para(p.text)

    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            paragraph(block)
        elif isinstance(block, Table):
            for row in block.rows:
                out.row(c.text for c in row.cells)
    return out.text(), pages, _language(document.core_properties.language)


def _unique(values: Iterable[str]) -> list[str]:
    """Merged table cells repeat their text once per grid column; keep one."""
    out: list[str] = []
    for v in values:
        if not out or out[-1] != v:
            out.append(v)
    return out


def _docx_pages(data: bytes) -> int | None:
    """The page count Word saved in docProps/app.xml, if it did."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        try:
            app = z.read("docProps/app.xml")
        except KeyError:
            return None
    m = re.search(rb"<(?:\w+:)?Pages>(\d+)</", app)
    return int(m.group(1)) if m else None


def _read_odt(data: bytes, max_bytes: int, max_pages: int) -> tuple[str, int | None, str | None]:
    from odf import teletype
    from odf.element import Element
    from odf.opendocument import load

    _check_inflation(data, max_bytes)
    document = load(io.BytesIO(data))  # damage: CorruptDocument in extract()

    out = _Blocks()

    def walk(el: Element, in_list: bool) -> None:
        for child in el.childNodes:
            tag = getattr(child, "qname", (None, None))[1]
            if tag == "h":
                out.heading(child.getAttribute("outlinelevel") or 1, teletype.extractText(child))
            elif tag == "p":
                (out.item if in_list else out.para)(teletype.extractText(child))
            elif tag == "list":
                walk(child, True)
            elif tag == "table-row":
                out.row(teletype.extractText(c) for c in child.childNodes)
            elif tag in (
                "list-item",
                "list-header",
                "section",
                "table",
                "table-rows",
                "table-header-rows",
                "text",
                "div",
            ):
                walk(child, in_list)

    walk(document.text, False)
    meta = _odt_meta(document)
    _check_pages(meta[0], max_pages)
    return out.text(), meta[0], meta[1]


def _odt_meta(document: Any) -> tuple[int | None, str | None]:
    pages: int | None = None
    language: str | None = None
    from odf import dc, meta

    for stat in document.getElementsByType(meta.DocumentStatistic):
        value = stat.getAttribute("pagecount")
        if value and str(value).isdigit():
            pages = int(value)
    for lang in document.getElementsByType(dc.Language):
        language = _language(str(lang))
    return pages, language


_ENCRYPTED = "the PDF is encrypted; remove the password and upload it again"
_NO_TEXT = (
    "scanned PDF: no text layer. Export the document as a PDF with text"
    " (or upload the original), or run OCR first"
)


def _read_pdf(data: bytes, max_bytes: int, max_pages: int) -> tuple[str, int | None, str | None]:
    """pypdf first; pdfminer.six when pypdf cannot open the file or finds no
    text (some font encodings and damaged cross-reference tables)."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError, PyPdfError

    pypdf_damage: tuple[type[Exception], ...] = (PyPdfError, *_DAMAGED)

    texts: list[str] = []
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # An owner password alone (printing/copying limits) still opens
            # with an empty user password: such a file is readable.
            try:
                opened = reader.decrypt("")
            except (DependencyError, NotImplementedError, PdfReadError) as exc:
                raise EncryptedDocument(_ENCRYPTED) from exc
            if not opened:
                raise EncryptedDocument(_ENCRYPTED)
        pages: int | None = len(reader.pages)
        _check_pages(pages, max_pages)
        texts = [page.extract_text() or "" for page in reader.pages]
    except FileNotDecryptedError as exc:
        raise EncryptedDocument(_ENCRYPTED) from exc
    except pypdf_damage:
        pages = None  # pypdf gave up: pdfminer.six counts and reads below
    text = "\n\n".join(t.strip() for t in texts)
    if not text.strip():
        miner_pages, text = _pdfminer_text(data, max_pages)
        pages = pages if pages is not None else miner_pages
    if not text.strip():
        raise NoTextLayer(_NO_TEXT)
    return list_items(text.translate(_LAYOUT)), pages, None


def _pdfminer_text(data: bytes, max_pages: int) -> tuple[int, str]:
    """(pages, text) by pdfminer.six; CorruptDocument when it cannot parse either."""
    from pdfminer.high_level import extract_text
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
    from pdfminer.pdfpage import PDFPage
    from pdfminer.psparser import PSException

    miner_damage: tuple[type[Exception], ...] = (PSException, *_DAMAGED)

    try:
        pages = sum(1 for _ in PDFPage.get_pages(io.BytesIO(data)))
        _check_pages(pages, max_pages)
        return pages, extract_text(io.BytesIO(data))
    except (PDFPasswordIncorrect, PDFEncryptionError) as exc:
        raise EncryptedDocument(_ENCRYPTED) from exc
    except miner_damage as exc:
        raise CorruptDocument(f"the PDF cannot be read: {exc or type(exc).__name__}") from exc


def _decode(data: bytes, declared_charset: str | None = None) -> str:
    """UTF-8 (with or without BOM), or the charset the document declares."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if declared_charset:
            try:
                return data.decode(codecs.lookup(declared_charset).name)
            except (LookupError, UnicodeDecodeError):
                pass
        raise UndecodableText(
            f"the file is not valid UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from exc


def _read_text(data: bytes, max_bytes: int, max_pages: int) -> tuple[str, int | None, str | None]:
    return list_items(_decode(data)), None, None


_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_HTML_LANG = re.compile(r"""<html[^>]*\blang=["']?([A-Za-z-]+)""", re.IGNORECASE)
_MD_ESCAPE = re.compile(r"\\([-+.#*_>`\[\]()!])")


def html_to_text(html: str) -> str:
    """HTML as the segmenter's text, through html2text (headings stay ``#``)."""
    import html2text

    h = html2text.HTML2Text()
    h.body_width = 0  # no hard wrapping: a wrapped line would split a statement
    h.ignore_links = True
    h.ignore_images = True
    h.ignore_emphasis = True
    h.ul_item_mark = "-"
    h.single_line_break = False
    text = _MD_ESCAPE.sub(r"\1", h.handle(html))
    return list_items(text)


def _read_html(data: bytes, max_bytes: int, max_pages: int) -> tuple[str, int | None, str | None]:
    m = _META_CHARSET.search(data[:4096])
    html = _decode(data, m.group(1).decode("ascii") if m else None)
    lang = _HTML_LANG.search(html[:4096])
    return html_to_text(html), None, _language(lang.group(1) if lang else None)


def _read_eml(data: bytes, max_bytes: int, max_pages: int) -> tuple[str, int | None, str | None]:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    if not isinstance(msg, EmailMessage):  # the default policy always builds these
        raise CorruptDocument("the e-mail cannot be read")
    blocks: list[str] = []
    subject = str(msg.get("subject", "") or "").strip()
    if subject:
        blocks.append(f"# {' '.join(subject.split())}")
    body = msg.get_body(preferencelist=("plain", "html"))
    if body is not None:
        try:
            content = body.get_content()
        except (LookupError, UnicodeDecodeError) as exc:
            raise UndecodableText(f"the e-mail body cannot be decoded: {exc}") from exc
        if not isinstance(content, str):
            raise UndecodableText("the e-mail body is not text")
        text = html_to_text(content) if body.get_content_type() == "text/html" else content
        blocks.append(list_items(text))
    attached = 0
    for part in msg.iter_attachments():
        name = part.get_filename()
        payload = part.get_payload(decode=True)
        if not name or not isinstance(payload, bytes):
            continue
        try:
            if claimed_format(name, part.get_content_type()) in (None, "eml"):
                continue  # a forwarded mail is its own upload, not nested reading
            inner = extract(
                name, part.get_content_type(), payload, max_bytes=max_bytes, max_pages=max_pages
            )
        except UnsupportedDocument:
            continue  # pictures, signatures, calendar invitations: not part of the note
        blocks.append(f"# {name}\n\n{inner.text}")
        attached += 1
    if body is None and not attached:
        raise UndecodableText("the e-mail has no text body and no readable attachment")
    language = _language(str(msg.get("content-language", "") or "")) or (
        _language(str(body.get("content-language", "") or "")) if body is not None else None
    )
    return "\n\n".join(blocks), None, language


_READERS: dict[str, Reader] = {
    "docx": _read_docx,
    "odt": _read_odt,
    "pdf": _read_pdf,
    "markdown": _read_text,
    "text": _read_text,
    "html": _read_html,
    "eml": _read_eml,
}

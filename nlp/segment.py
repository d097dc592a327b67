"""Segmentation of a note into statements.

Notes are semi-structured: headings, bullet lists, numbered items, one item per
line, and ordinary paragraphs. Structure is read from the lines first (each
bullet, numbered or line-separated item is a statement; a heading is kept as
context for the items under it), and only running prose is split into
sentences with spaCy's rule-based sentencizer on ``spacy.blank(lang)``.
Fragments too short to stand alone ("Yes.", "See above") are merged into the
neighbouring statement.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

_BULLET = re.compile(r"^\s*(?:[-*•‣◦▪●–—·+]|\u2022)\s+(?P<body>.+)$")
_NUMBERED = re.compile(
    r"^\s*(?:\(?(?:\d{1,3}|[a-zA-Z]|[ivxIVX]{1,4})[.)]|\d{1,3}\.\d{1,3}\.?|§\s*\d+)\s+(?P<body>.+)$"
)
_MD_HEADING = re.compile(r"^\s*#{1,6}\s+(?P<body>.+?)\s*#*\s*$")
_UNDERLINE = re.compile(r"^\s*(?:=+|-+)\s*$")
_TERMINAL = re.compile(r"[.!?…;:)\"”»]\s*$")
_WORD = re.compile(r"\w+", re.UNICODE)
_INNER_STOP = re.compile(r"[.!?…]\s+\S")

SPACY_LANGS = set(
    [
        "af",
        "am",
        "ar",
        "az",
        "bg",
        "bn",
        "ca",
        "cs",
        "da",
        "de",
        "dsb",
        "el",
        "en",
        "es",
        "et",
        "eu",
        "fa",
        "fi",
        "fr",
        "ga",
        "gu",
        "he",
        "hi",
        "hr",
        "hsb",
        "hu",
        "hy",
        "id",
        "is",
        "it",
        "ja",
        "kn",
        "ko",
        "ky",
        "la",
        "lb",
        "lg",
        "lij",
        "lt",
        "lv",
        "mk",
        "ml",
        "mr",
        "ms",
        "nb",
        "ne",
        "nl",
        "pl",
        "pt",
        "ro",
        "ru",
        "sa",
        "si",
        "sk",
        "sl",
        "sq",
        "sr",
        "sv",
        "ta",
        "te",
        "th",
        "ti",
        "tl",
        "tn",
        "tr",
        "tt",
        "uk",
        "ur",
        "vi",
        "xx",
        "yo",
        "zh",
    ]
)

_nlps: dict[str, Any] = {}
_nlp_lock = threading.Lock()


def blank_pipeline(lang: str | None) -> Any:
    """``spacy.blank(lang)`` with a sentencizer, cached per language."""
    code = lang if lang in SPACY_LANGS and lang not in ("ja", "ko", "zh", "th", "vi") else "xx"
    nlp = _nlps.get(code)
    if nlp is None:
        with _nlp_lock:
            nlp = _nlps.get(code)
            if nlp is None:
                import spacy

                nlp = spacy.blank(code)
                nlp.add_pipe("sentencizer")
                _nlps[code] = nlp
    return nlp


@dataclass
class Segment:
    text: str
    heading: str | None
    position: int  # 1-based


def _words(text: str) -> int:
    return len(_WORD.findall(text))


class Segmenter:
    """Splits a note into statements; see the module docstring for the rules."""

    def __init__(self, min_words: int = 3, min_chars: int = 15, max_heading_words: int = 8) -> None:
        self.min_words = min_words
        self.min_chars = min_chars
        self.max_heading_words = max_heading_words

    # -- line classification -------------------------------------------------
    def _heading(self, line: str, nxt: str | None) -> str | None:
        m = _MD_HEADING.match(line)
        if m:
            return m.group("body").strip().rstrip(":")
        s = line.strip()
        if nxt is not None and _UNDERLINE.match(nxt):
            return s
        if _words(s) == 0 or _words(s) > self.max_heading_words:
            return None
        if s.endswith(":"):
            return s.rstrip(":").strip()
        letters = [c for c in s if c.isalpha()]
        if len(letters) >= 3 and all(c.isupper() for c in letters):
            return s
        # a one-to-three-word title ("Finances") above its content
        if nxt is not None and _words(s) <= 3 and not _TERMINAL.search(s) and s[:1].isupper():
            return s
        # a short title-like line without terminal punctuation followed by list items
        if (
            nxt is not None
            and not _TERMINAL.search(s)
            and (_BULLET.match(nxt) or _NUMBERED.match(nxt))
            and _words(s) <= 5
        ):
            return s
        return None

    def _blocks(self, text: str) -> list[tuple[str, str | None, bool]]:
        """(text, heading, is_item) blocks: items stay whole, prose gets sentencized."""
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        blocks: list[tuple[str, str | None, bool]] = []
        heading: str | None = None
        para: list[str] = []
        item: list[str] | None = None

        def flush_para() -> None:
            nonlocal para
            if para:
                blocks.append((" ".join(para), heading, False))
                para = []

        def flush_item() -> None:
            nonlocal item
            if item:
                blocks.append((" ".join(item), heading, True))
            item = None

        for i, raw in enumerate(lines):
            line = raw.strip()
            nxt = next((ln for ln in lines[i + 1 :] if ln.strip()), None)
            if not line:
                flush_item()
                flush_para()
                continue
            if _UNDERLINE.match(line):
                continue
            bullet = _BULLET.match(line) or _NUMBERED.match(line)
            if bullet:
                flush_item()
                flush_para()
                body = bullet.group("body").strip()
                h = self._heading(body, nxt) if body.endswith(":") else None
                if h is not None:
                    heading = h
                    continue
                item = [body]
                continue
            h = self._heading(line, nxt)
            if (
                h is None
                and not blocks
                and not para
                and item is None
                and i + 1 < len(lines)
                and not lines[i + 1].strip()
                and not _TERMINAL.search(line)
                and 0 < _words(line) <= self.max_heading_words
            ):
                h = line  # a title line standing alone at the top of the note
            if h is not None:
                flush_item()
                flush_para()
                heading = h
                continue
            if item is not None:
                # indented continuation of a bullet, or a lower-case wrapped line
                if raw[:1].isspace() or line[:1].islower():
                    item.append(line)
                    continue
                flush_item()
            if para:
                prev = para[-1]
                if _TERMINAL.search(prev) and line[:1].isupper() and not raw[:1].isspace():
                    # a line-separated item list: every full line is its own statement
                    flush_para()
            para.append(line)
        flush_item()
        flush_para()
        return blocks

    def split(self, text: str, language: str | None = None) -> list[Segment]:
        pieces: list[tuple[str, str | None]] = []
        for block, heading, is_item in self._blocks(text):
            if is_item or not _INNER_STOP.search(block):
                pieces.append((block, heading))
                continue
            # spaCy only for prose with an inner sentence end: importing it and
            # building a blank pipeline cost seconds a one-sentence note never needs
            doc = blank_pipeline(language)(block)
            for sent in doc.sents:
                s = sent.text.strip()
                if s:
                    pieces.append((s, heading))
        merged: list[tuple[str, str | None]] = []
        for s, h in pieces:
            short = _words(s) < self.min_words or len(s) < self.min_chars
            if short and merged and merged[-1][1] == h:
                merged[-1] = (merged[-1][0] + " " + s, h)
            else:
                merged.append((s, h))
        # a short first fragment joins the statement after it
        if len(merged) > 1:
            s0, h0 = merged[0]
            if (_words(s0) < self.min_words or len(s0) < self.min_chars) and merged[1][1] == h0:
                merged[1] = (s0 + " " + merged[1][0], h0)
                merged.pop(0)
        return [Segment(text=s, heading=h, position=i + 1) for i, (s, h) in enumerate(merged)]

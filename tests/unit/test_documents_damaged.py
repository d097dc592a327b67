"""Damaged files are a DocumentError (a 4xx), never another exception (a 5xx).

Valid samples of every binary format are mutated (random bytes, truncation,
overwritten runs) with a fixed seed; each result must either extract or raise
a :class:`~peerlearn.documents.DocumentError`. Before the parsers' error types
were named in ``peerlearn/documents.py`` this found zlib.error, EOFError,
NotImplementedError, AssertionError and pypdf's LimitReachedError.
"""

from __future__ import annotations

import logging
import random
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from document_samples import (  # noqa: E402
    docx_bytes,
    eml_bytes,
    encrypted_pdf_bytes,
    odt_bytes,
    pdf_bytes,
)

from peerlearn.documents import DocumentError, extract  # noqa: E402

SAMPLES = {
    "a.docx": docx_bytes("Title", ["Para one here."], ["item a", "item b"]),
    "a.odt": odt_bytes("Title", ["Para one here."], ["item a"]),
    "a.pdf": pdf_bytes([["Line one", "• item"], ["two"]]),
    "b.pdf": encrypted_pdf_bytes(["secret text"]),
    "a.eml": eml_bytes("Subj", "Body text here.", attachment=("x.pdf", pdf_bytes([["att"]]))),
}


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    op = rng.random()
    if op < 0.4:
        for _ in range(rng.randint(1, 20)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif op < 0.7:
        b = b[: rng.randrange(1, len(b))]
    else:
        start = rng.randrange(len(b))
        end = min(len(b), start + rng.randint(1, 200))
        b[start:end] = bytes(rng.randrange(256) for _ in range(end - start))
    return bytes(b)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_mutated_files_never_escape_as_other_errors(name: str) -> None:
    logging.disable(logging.WARNING)  # pypdf logs every repair it attempts
    rng = random.Random(name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(150):
                data = _mutate(rng, SAMPLES[name])
                with contextlib.suppress(DocumentError):
                    extract(name, None, data)
    finally:
        logging.disable(logging.NOTSET)

"""How long reading an uploaded document takes, per format, at the limits.

Generates documents in the process (tests/document_samples.py: python-docx,
odfpy, a hand-written PDF with a text layer, an e-mail with a PDF attached)
of about ``--paragraphs`` paragraphs (the PDF: ``--pages`` pages of 40 lines),
then times :func:`peerlearn.documents.extract` (best of ``--repeat``). This is
the work the API does in a thread before a document note reaches the workflow.

    .venv/bin/python bench/document_extract.py --paragraphs 2000 --pages 200
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from document_samples import docx_bytes, eml_bytes, odt_bytes, pdf_bytes  # noqa: E402

from peerlearn.documents import extract  # noqa: E402

LINE = "Matchmaking works when firms fill in a needs profile before the event ({})."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--paragraphs", type=int, default=2000)
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    paras = [LINE.format(i) for i in range(args.paragraphs)]
    items = paras[: args.paragraphs // 4]
    pdf = pdf_bytes([[LINE.format(p * 40 + i) for i in range(40)] for p in range(args.pages)])
    samples = {
        "notes.docx": docx_bytes("Visit", paras, items),
        "notes.odt": odt_bytes("Visit", paras, items),
        "notes.pdf": pdf,
        "notes.html": (
            "<h1>Visit</h1>"
            + "".join(f"<p>{p}</p>" for p in paras)
            + "<ul>"
            + "".join(f"<li>{i}</li>" for i in items)
            + "</ul>"
        ).encode(),
        "notes.md": ("# Visit\n\n" + "\n\n".join(paras)).encode(),
        "mail.eml": eml_bytes("Visit", "\n\n".join(paras[:200]), attachment=("minutes.pdf", pdf)),
    }
    print(f"{'file':<12} {'bytes':>10} {'pages':>6} {'chars out':>10} {'seconds':>8}")
    for name, data in samples.items():
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            doc = extract(name, None, data, max_bytes=50_000_000, max_pages=10_000)
            best = min(best, time.perf_counter() - t0)
        pages = "" if doc.pages is None else str(doc.pages)
        print(f"{name:<12} {len(data):>10} {pages:>6} {len(doc.text):>10} {best:>8.3f}")


if __name__ == "__main__":
    main()

"""Mining quality on SIB-200: peerlearn vs BERTopic vs k-means with the true k.

    .venv/bin/python bench/mining_quality.py --sib /work/shared/data/sib200 \\
        --langs eng_Latn,swe_Latn,pol_Latn [--split dev] [--seeds 0,1,2] [--limit N]

The chosen languages' sentences are pooled (parallel across languages by
``index_id``, topic in ``category``) and written as statement-mode JSONL;
peerlearn mines them through its CLI (``peerlearn mine --unit statement``),
the contract the service relies on. BERTopic 0.17 gets the *same* embeddings
(read from the same cache), with its default UMAP + HDBSCAN; k-means gets the
true number of topics, on raw and on language-centred embeddings.

Printed per method: V-measure, NMI, ARI against the topic; NMI of theme
against language (leakage; 0 is best); translation agreement (share of
index_ids whose translations all land in one theme; outliers count as
disagreeing); outlier share; number of themes; wall time. Not a test.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ISO = {"eng": "en", "swe": "sv", "pol": "pl", "deu": "de", "est": "et", "fra": "fr"}


def load(sib: Path, langs: list[str], split: str, limit: int | None) -> list[dict]:
    rows = []
    for lang in langs:
        with open(sib / lang / f"{split}.tsv", encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            for i, r in enumerate(reader):
                if limit is not None and i >= limit:
                    break
                rows.append(
                    {
                        "id": f"{lang}:{r['index_id']}",
                        "index_id": r["index_id"],
                        "topic": r["category"],
                        "lang": lang,
                        "text": r["text"],
                    }
                )
    return rows


def metrics(labels: list, rows: list[dict]) -> dict[str, float]:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, v_measure_score

    lab = [str(x) for x in labels]
    topic = [r["topic"] for r in rows]
    lang = [r["lang"] for r in rows]
    groups: dict[str, list[str]] = defaultdict(list)
    for lb, r in zip(labels, rows, strict=True):
        groups[r["index_id"]].append("-1" if lb is None or lb == -1 else str(lb))
    agree = np.mean([len(set(g)) == 1 and g[0] != "-1" for g in groups.values()])
    outl = np.mean([lb is None or lb == -1 for lb in labels])
    themes = len({x for x in labels if x is not None and x != -1})
    return {
        "V": v_measure_score(topic, lab),
        "NMI": normalized_mutual_info_score(topic, lab),
        "ARI": adjusted_rand_score(topic, lab),
        "leak": normalized_mutual_info_score(lang, lab),
        "TA": float(agree),
        "out": float(outl),
        "k": themes,
    }


def run_peerlearn(rows: list[dict], seed: int, cache: Path, extra: list[str]) -> tuple[list, float]:
    with tempfile.TemporaryDirectory() as tmp:
        inp = Path(tmp) / "in.jsonl"
        with open(inp, "w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False) + "\n")
        t = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "service.cli",
                "mine",
                "--input",
                str(inp),
                "--out",
                str(Path(tmp) / "out"),
                "--unit",
                "statement",
                "--seed",
                str(seed),
                "--cache",
                str(cache),
                "--quiet",
                *extra,
            ],
            check=True,
            cwd=ROOT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        wall = time.perf_counter() - t
        theme = {}
        with open(Path(tmp) / "out" / "statements.jsonl", encoding="utf-8") as fh:
            for line in fh:
                s = json.loads(line)
                theme[s["id"]] = s["theme"]
    return [theme[r["id"]] for r in rows], wall


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sib", type=Path, default=Path("/work/shared/data/sib200"))
    ap.add_argument("--langs", default="eng_Latn,swe_Latn,pol_Latn")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--limit", type=int, default=None, help="sentences per language")
    ap.add_argument("--cache", type=Path, default=ROOT / ".peerlearn" / "embedding-cache")
    ap.add_argument("--no-bertopic", action="store_true")
    ap.add_argument("--granularity", default=None)
    args = ap.parse_args()
    langs = args.langs.split(",")
    rows = load(args.sib, langs, args.split, args.limit)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(
        f"{len(rows)} sentences, {len(langs)} languages ({args.split}), "
        f"{len({r['topic'] for r in rows})} topics, seeds {seeds}",
        flush=True,
    )

    from nlp.cache import FileCache
    from nlp.debias import remove_group_means
    from nlp.model import ensure_model
    from nlp.pipeline import Miner
    from nlp.types import NoteIn

    miner = Miner.from_model_dir(ensure_model(), cache=FileCache(args.cache))
    t = time.perf_counter()
    sts = miner.segment([NoteIn(id=r["id"], text=r["text"]) for r in rows], unit="statement")
    X = miner.embed(sts)
    print(f"embeddings ready in {time.perf_counter() - t:.1f}s (cache {args.cache})", flush=True)
    detected = [s.language for s in sts]
    lang_ok = np.mean(
        [d == ISO.get(r["lang"][:3], "?") for d, r in zip(detected, rows, strict=True)]
    )
    print(f"language id agreement with the SIB language: {lang_ok:.3f}")

    results: dict[str, list[dict[str, float]]] = defaultdict(list)
    extra = ["--granularity", args.granularity] if args.granularity else []
    for seed in seeds:
        lab, wall = run_peerlearn(rows, seed, args.cache, extra)
        results["peerlearn (CLI)"].append({**metrics(lab, rows), "time": wall})

        from sklearn.cluster import KMeans

        k = len({r["topic"] for r in rows})
        t = time.perf_counter()
        km = KMeans(k, n_init=10, random_state=seed).fit_predict(X)
        results["k-means true k, raw"].append(
            {**metrics(km.tolist(), rows), "time": time.perf_counter() - t}
        )
        Y = remove_group_means(X, detected)  # the miner's rule (nlp.debias)
        t = time.perf_counter()
        km = KMeans(k, n_init=10, random_state=seed).fit_predict(Y)
        results["k-means true k, centred"].append(
            {**metrics(km.tolist(), rows), "time": time.perf_counter() - t}
        )
        if not args.no_bertopic:
            from bertopic import BERTopic
            from umap import UMAP

            t = time.perf_counter()
            umap_model = UMAP(
                n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", random_state=seed
            )
            topic_model = BERTopic(
                embedding_model=None, umap_model=umap_model, language="multilingual"
            )
            topics, _ = topic_model.fit_transform([r["text"] for r in rows], embeddings=X)
            results["BERTopic 0.17 (same emb.)"].append(
                {**metrics(list(topics), rows), "time": time.perf_counter() - t}
            )
        print(f"seed {seed} done", flush=True)

    print(
        f"\n{'method':28s} {'V':>6s} {'NMI':>6s} {'ARI':>6s} {'leak':>6s} {'TA':>6s} {'out':>6s} "
        f"{'themes':>6s} {'time s':>7s}   (mean of {len(seeds)} seeds)"
    )
    for name, rs in results.items():
        m = {k: float(np.mean([r[k] for r in rs])) for k in rs[0]}
        print(
            f"{name:28s} {m['V']:6.3f} {m['NMI']:6.3f} {m['ARI']:6.3f} {m['leak']:6.3f} {m['TA']:6.2f} "  # noqa: E501
            f"{m['out']:6.2f} {m['k']:6.1f} {m['time']:7.2f}"
        )
    pv = np.mean([r["V"] for r in results["peerlearn (CLI)"]])
    kv = np.mean([r["V"] for r in results["k-means true k, centred"]])
    print(f"\npeerlearn V / k-means-true-k (centred) V = {pv / kv:.2f}")
    if "BERTopic 0.17 (same emb.)" in results:
        bv = np.mean([r["V"] for r in results["BERTopic 0.17 (same emb.)"]])
        print(f"peerlearn V - BERTopic V = {pv - bv:+.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

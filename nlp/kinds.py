"""Statement kinds: lesson, recommendation, best practice, challenge, success, other.

A classifier learnt on the statement embeddings decides. The miner embeds
every statement with multilingual-e5 anyway, and what makes a statement a
lesson, a piece of advice, a working practice, a problem, an achievement or a
plain fact is largely a direction in that space shared across languages. So a
multinomial logistic regression trained on our own labelled statements
(``nlp/kinds_data/train.jsonl``: 17 languages, natural meeting-note phrasing,
hard negatives such as facts with numbers, problems phrased as "we must",
successes without the word) carries to languages it never saw. The cue
lexicons (regular expressions for six languages) used to decide and failed
outside those languages; they remain only as five small input features and
as the fallback when no embedding exists at all.

Probabilities are calibrated by one temperature fitted on out-of-fold
predictions in which each fold leaves one whole language out, so a confidence
reads as "how often this is right on a language the model never saw". When
the top probability is below a threshold tuned on the same predictions the
answer is ``other``: an unsure kind must not list a fact among the practices.

The weights ship as package data (``nlp/kinds_data/weights.json``), so
nothing trains at run time and prediction is numpy only;
``bench/train_kinds.py`` re-creates them deterministically and
``bench/kinds_quality.py`` prints the leave-one-language-out table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nlp.types import KINDS

#: The kinds a cue lexicon exists for (``other`` has none: it is the absence of a cue).
KIND_NAMES = ("lesson", "recommendation", "best_practice", "challenge", "success")
#: The shipped weights (package data), written by bench/train_kinds.py.
WEIGHTS_PATH = Path(__file__).resolve().parent / "kinds_data" / "weights.json"

# Each pattern is searched in the lower-cased text. Word stems end without \b on
# purpose (Polish, Estonian and German inflect).
CUES: dict[str, dict[str, list[str]]] = {
    "lesson": {
        "en": [
            r"\bwe (?:have )?(?:learn(?:ed|t)|realised|realized|discovered|understood)\b",
            r"\blessons? (?:learn|we)",
            r"\blesson:",
            r"\bin hindsight\b",
            r"\bit turned out\b",
            r"\btakeaway",
            r"\btaught us\b",
            r"\bexperience (?:shows|showed|has shown)\b",
            r"\bwe (?:now )?know that\b",
            r"\blearn(?:ed|t) (?:that|the hard way)\b",
        ],
        "sv": [
            r"\bvi (?:har )?lärt oss\b",
            r"\bvi lärde oss\b",
            r"\blärdom",
            r"\bi efterhand\b",
            r"\bvi insåg\b",
            r"\bdet visade sig\b",
            r"\berfarenhet(?:en)? visar\b",
            r"\bvi (?:har )?förstått\b",
            r"\bvi upptäckte\b",
            r"\blärde oss\b",
        ],
        "pl": [
            r"\bnauczyliśmy się\b",
            r"\bnauczył[ao]? nas\b",
            r"\bwniosek\b",
            r"\bwnioski\b",
            r"\blekcj",
            r"\bz perspektywy czasu\b",
            r"\bzrozumieliśmy\b",
            r"\bokazało się\b",
            r"\bdoświadczenie pokazuje\b",
            r"\bprzekonaliśmy się\b",
            r"\bdowiedzieliśmy się\b",
        ],
        "de": [
            r"\bwir haben (?:\w+ )?gelernt\b",
            r"\bgelernt\b",
            r"\blehre\b",
            r"\berkenntnis",
            r"\bim nachhinein\b",
            r"\brückblickend\b",
            r"\bhat sich gezeigt\b",
            r"\bstellte sich heraus\b",
            r"\bwir haben erkannt\b",
            r"\berfahrung zeigt\b",
        ],
        "et": [
            r"\bõppisime\b",
            r"\bõppetun",
            r"\btagantjärele\b",
            r"\bselgus\b",
            r"\bmõistsime\b",
            r"\bkogemus näitab\b",
            r"\bjäreldus",
            r"\bsaime aru\b",
        ],
        "fr": [
            r"\bnous avons appris\b",
            r"\bleçons?\b",
            r"\benseignements?\b",
            r"\bavec le recul\b",
            r"\bs'est avéré\b",
            r"\bnous avons compris\b",
            r"\bl'expérience (?:montre|a montré)\b",
            r"\bnous avons constaté\b",
            r"\bnous avons réalisé\b",
        ],
    },
    "recommendation": {
        "en": [
            r"\bwe (?:strongly )?recommend\b",
            r"\brecommend",
            r"\bshould\b",
            r"\bnext time\b",
            r"\badvisable\b",
            r"\bmake sure\b",
            r"\bensure\b",
            r"\bwe suggest\b",
            r"\bsuggest",
            r"\bit would be (?:better|good|useful)\b",
            r"\bconsider\b",
            r"\bneeds? to be\b",
            r"\bmust\b",
            r"\bin future\b",
            r"\bin the future\b",
            r"^(?:plan|start|involve|keep|use|agree|set|book|share) ",
        ],
        "sv": [
            r"\bvi rekommenderar\b",
            r"\brekommend",
            r"\bbör\b",
            r"\bborde\b",
            r"\bnästa gång\b",
            r"\bse till att\b",
            r"\bföreslår\b",
            r"\bman ska\b",
            r"\bbehöver\b",
            r"\bi framtiden\b",
            r"\bvi råder\b",
            r"\bvar noga med\b",
        ],
        "pl": [
            r"\bzalecamy\b",
            r"\bzaleca\b",
            r"\brekomend",
            r"\bpolecamy\b",
            r"\bnależy\b",
            r"\bpowinn",
            r"\bnastępnym razem\b",
            r"\bwarto\b",
            r"\btrzeba\b",
            r"\bproponujemy\b",
            r"\bsugerujemy\b",
            r"\bw przyszłości\b",
            r"\bradzimy\b",
        ],
        "de": [
            r"\bwir empfehlen\b",
            r"\bempfehl",
            r"\bsollte",
            r"\bnächstes mal\b",
            r"\bbeim nächsten mal\b",
            r"\bachten sie\b",
            r"\bschlagen vor\b",
            r"\bmüssen\b",
            r"\bratsam\b",
            r"\bkünftig\b",
            r"\bin zukunft\b",
            r"\bsinnvoll wäre\b",
        ],
        "et": [
            r"\bsoovitame\b",
            r"\bsoovitus",
            r"\bpeaks\b",
            r"\bpeaksid\b",
            r"\bjärgmisel korral\b",
            r"\btuleks\b",
            r"\bvõiks\b",
            r"\btasub\b",
            r"\btulevikus\b",
            r"\bsoovitan\b",
        ],
        "fr": [
            r"\bnous recommandons\b",
            r"\brecommand",
            r"\bdevrai",
            r"\bdevrions\b",
            r"\bdevrait\b",
            r"\bla prochaine fois\b",
            r"\bil faut\b",
            r"\bil convient\b",
            r"\bveiller à\b",
            r"\bnous suggérons\b",
            r"\bconseill",
            r"\bà l'avenir\b",
        ],
    },
    "best_practice": {
        "en": [
            r"\b(?:best|good|promising) practices?\b",
            r"\bworks? well\b",
            r"\bworked (?:very )?well\b",
            r"\bproven\b",
            r"\bproved (?:useful|effective|valuable|helpful)\b",
            r"\bit helps to\b",
            r"\buseful (?:approach|tool|method|way)\b",
            r"\beffective way\b",
            r"\bkey to success\b",
            r"\bmodel to follow\b",
            r"\bworth (?:copying|repeating|replicating)\b",
            r"\bhelped a lot\b",
        ],
        "sv": [
            r"\bgod praxis\b",
            r"\bbästa praxis\b",
            r"\bgoda exempel\b",
            r"\bfungerar (?:mycket )?bra\b",
            r"\bfungerade (?:mycket )?bra\b",
            r"\bhar visat sig\b",
            r"\bbra sätt\b",
            r"\bframgångsfaktor",
            r"\banvändbar",
            r"\bvärdefull",
            r"\bvärt att upprepa\b",
        ],
        "pl": [
            r"\bdobr[aey] praktyk",
            r"\bnajlepsze praktyki\b",
            r"\bsprawdza się\b",
            r"\bsprawdził[aoy]? się\b",
            r"\bskuteczn[ya] (?:sposób|metoda)\b",
            r"\bdobrym rozwiązaniem\b",
            r"\bprzydatn",
            r"\bwarto naśladować\b",
            r"\bdobrze działa\b",
            r"\bbardzo pomogł",
        ],
        "de": [
            r"\bbewährt",
            r"\bgute praxis\b",
            r"\bbest practice",
            r"\bgood practice",
            r"\bfunktioniert (?:sehr )?gut\b",
            r"\bhat (?:sehr )?gut funktioniert\b",
            r"\berfolgsfaktor",
            r"\bhilfreich\b",
            r"\bnützlich\b",
            r"\bvorbildlich\b",
            r"\bwiederholenswert\b",
        ],
        "et": [
            r"\bhea praktika\b",
            r"\bparim praktika\b",
            r"\bhead praktikad\b",
            r"\btoimib hästi\b",
            r"\btöötas hästi\b",
            r"\bend õigustanud\b",
            r"\bkasulik",
            r"\btõhus viis\b",
        ],
        "fr": [
            r"\bbonnes? pratiques?\b",
            r"\bfonctionne bien\b",
            r"\ba (?:très )?bien fonctionné\b",
            r"\bfait ses preuves\b",
            r"\butile\b",
            r"\befficace\b",
            r"\bà reproduire\b",
        ],
    },
    "challenge": {
        "en": [
            r"\bchalleng",
            r"\bdifficult",
            r"\bproblem",
            r"\bstruggl",
            r"\bhard to\b",
            r"\bbarrier",
            r"\bobstacle",
            r"\bdelay",
            r"\black of\b",
            r"\bissues?\b",
            r"\bfailed\b",
            r"\bunfortunately\b",
            r"\bcould not\b",
            r"\bcouldn't\b",
            r"\binsufficient",
            r"\bconfusion\b",
            r"\bdid not work\b",
            r"\bbottleneck",
            r"\bshortage\b",
            r"\bdrop(?:ped)? out\b",
            r"\blow (?:attendance|turnout|response)\b",
        ],
        "sv": [
            r"\butmaning",
            r"\bsvår",
            r"\bproblem",
            r"\bhinder\b",
            r"\bbrist på\b",
            r"\bförsen",
            r"\btyvärr\b",
            r"\bkunde inte\b",
            r"\blyckades inte\b",
            r"\botillräcklig",
            r"\bförsening",
            r"\bfungerade inte\b",
            r"\bkrångl",
        ],
        "pl": [
            r"\bwyzwani",
            r"\btrudn",
            r"\bproblem",
            r"\bprzeszkod",
            r"\bbarier",
            r"\bbrak\w*\b",
            r"\bopóźni",
            r"\bniestety\b",
            r"\bnie udało\b",
            r"\bnie mogli",
            r"\bniewystarczając",
            r"\bnie sprawdził",
        ],
        "de": [
            r"\bherausforderung",
            r"\bschwierig",
            r"\bproblem",
            r"\bhindernis",
            r"\bmangel\b",
            r"\bfehlende",
            r"\bverzöger",
            r"\bleider\b",
            r"\bnicht gelungen\b",
            r"\bkonnten nicht\b",
            r"\bunzureichend",
            r"\bhat nicht funktioniert\b",
            r"\bschwer\b",
        ],
        "et": [
            r"\bväljakutse",
            r"\braske",
            r"\bkeeruli",
            r"\bprobleem",
            r"\btakistus",
            r"\bpuudu",
            r"\bviivit",
            r"\bkahjuks\b",
            r"\bei õnnestunud\b",
            r"\bei suutnud\b",
            r"\bhilin",
        ],
        "fr": [
            r"\bdéfi",
            r"\bdifficile",
            r"\bdifficulté",
            r"\bproblème",
            r"\bobstacle",
            r"\bmanque de\b",
            r"\bretard",
            r"\bmalheureusement\b",
            r"\bn'a pas pu\b",
            r"\binsuffisant",
            r"\bn'avons pas pu\b",
        ],
    },
    "success": {
        "en": [
            r"\bsuccess",
            r"\bachieved\b",
            r"\bmanaged to\b",
            r"\baccomplished\b",
            r"\bmilestone",
            r"\bexceeded\b",
            r"\bproud\b",
            r"\bincreased\b",
            r"\bimproved\b",
            r"\bwell received\b",
            r"\brecord\b",
            r"\bdoubled\b",
            r"\bwon\b",
            r"\bcompleted\b",
            r"\bbreakthrough\b",
        ],
        "sv": [
            r"\blyckades\b",
            r"\bframgång",
            r"\blyckad",
            r"\buppnådde\b",
            r"\bnådde\b",
            r"\növerträffade\b",
            r"\bstolta\b",
            r"\bökade\b",
            r"\bförbättrade",
            r"\buppskattad",
            r"\bfördubblade\b",
            r"\bgenomförde\b",
            r"\bvann\b",
        ],
        "pl": [
            r"\bsukces",
            r"\budało (?:nam )?się\b",
            r"\bosiągn",
            r"\bzrealizowaliśmy\b",
            r"\bprzekroczyliśmy\b",
            r"\bdumni\b",
            r"\bwzrosł",
            r"\bpoprawił",
            r"\budan",
            r"\bpodwoił",
            r"\bzakończyliśmy\b",
            r"\bwygra",
        ],
        "de": [
            r"\berfolg",
            r"\bgelungen\b",
            r"\bgeschafft\b",
            r"\berreicht\b",
            r"\bübertroffen\b",
            r"\bstolz\b",
            r"\bgesteigert\b",
            r"\bverbessert\b",
            r"\bgut angenommen\b",
            r"\bverdoppelt\b",
            r"\babgeschlossen\b",
            r"\bgewonnen\b",
        ],
        "et": [
            r"\bedu\w*\b",
            r"\bõnnestus\b",
            r"\bsaavutasime\b",
            r"\bületas\b",
            r"\buhked\b",
            r"\bkasvas\b",
            r"\bparanes\b",
            r"\bkahekordistus",
            r"\blõpetasime\b",
        ],
        "fr": [
            r"\bsuccès\b",
            r"\bréussi",
            r"\bavons atteint\b",
            r"\bdépassé",
            r"\bfiers\b",
            r"\baugmenté\b",
            r"\bamélioré",
            r"\bbien accueilli",
            r"\bdoublé\b",
            r"\bfinalisé\b",
        ],
    },
}

# Cue families that usually override others when both match: a negative outcome
# phrased as a lesson stays a lesson ("we learned that delays ..."), and a
# recommendation mentioning a problem stays a recommendation.
PRIORITY = {
    "lesson": 0.30,
    "recommendation": 0.25,
    "best_practice": 0.2,
    "success": 0.1,
    "challenge": 0.1,
}

_compiled: dict[tuple[str, str], re.Pattern[str] | None] = {}


def _pattern(kind: str, lang: str) -> re.Pattern[str] | None:
    """One alternation per kind and language: a single scan instead of one per cue."""
    key = (kind, lang)
    if key not in _compiled:
        pats = CUES[kind].get(lang, [])
        _compiled[key] = re.compile("|".join(f"(?:{p})" for p in pats)) if pats else None
    return _compiled[key]


def cue_scores(text: str, lang: str) -> dict[str, float]:
    """1.0 + priority for each kind with a matching cue in ``lang`` (or English as a fallback)."""
    low = text.lower()
    out: dict[str, float] = {}
    langs = [lang] if lang in CUES["lesson"] else ["en"]
    if lang != "en":
        langs.append("en")  # English words are common in notes in every language
    for kind in KIND_NAMES:
        for lg in langs:
            pat = _pattern(kind, lg)
            if pat is not None and pat.search(low):
                out[kind] = 1.0 + PRIORITY[kind]
                break
    return out


def cue_kind(text: str, lang: str) -> tuple[str, float]:
    """The lexicon-only answer, for callers without any embedding (no encoder, no vectors).

    The highest-priority matching cue family wins; no cue means ``other``. The
    confidence is a fixed, uncalibrated 0.5: this path is a fallback, not a
    measured classifier.
    """
    cues = cue_scores(text, lang)
    if not cues:
        return "other", 0.5
    return max(cues, key=lambda k: (cues[k], -KIND_NAMES.index(k))), 0.5


def lexicon_features(texts: Sequence[str], langs: Sequence[str]) -> np.ndarray:
    """(n, 5): 1.0 where a cue of that kind matches. Inputs to the model, never the decision."""
    out = np.zeros((len(texts), len(KIND_NAMES)), dtype=np.float64)
    for i, (text, lang) in enumerate(zip(texts, langs, strict=True)):
        for kind in cue_scores(text, lang):
            out[i, KIND_NAMES.index(kind)] = 1.0
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)


@dataclass
class KindModel:
    """A fitted kind classifier: plain arrays, a JSON round-trip, numpy-only prediction.

    ``features = [(embedding - mean) / scale, lexicon_weight * cue matches]``,
    ``probabilities = softmax((features @ coef.T + intercept) / temperature)``;
    a top probability below ``threshold`` answers ``other``.
    """

    classes: tuple[str, ...]
    mean: np.ndarray  # (d,)
    scale: np.ndarray  # (d,)
    coef: np.ndarray  # (k, d) or (k, d + 5) with lexicon features
    intercept: np.ndarray  # (k,)
    temperature: float = 1.0
    threshold: float = 0.0
    lexicon_weight: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)
    #: "Is this a kind at all" gate: unit mean direction of the training statements that
    #: have a kind, and the cosine to it below which the answer is ``other`` whatever the
    #: classifier says. Plain news or encyclopedia sentences (sport results, geography)
    #: lie far from meeting-note lessons and advice but a linear classifier still picks
    #: some kind for them with confidence; the gate abstains there. None: no gate.
    gate_centroid: np.ndarray | None = None
    gate_min: float = -1.0

    def features(self, X: np.ndarray, texts: Sequence[str], langs: Sequence[str]) -> np.ndarray:
        Z = (np.asarray(X, dtype=np.float64) - self.mean) / self.scale
        if self.lexicon_weight:
            Z = np.hstack([Z, self.lexicon_weight * lexicon_features(texts, langs)])
        return Z

    def logits(self, X: np.ndarray, texts: Sequence[str], langs: Sequence[str]) -> np.ndarray:
        return np.asarray(self.features(X, texts, langs) @ self.coef.T + self.intercept)

    def proba(self, X: np.ndarray, texts: Sequence[str], langs: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities, columns in ``classes`` order."""
        return _softmax(self.logits(X, texts, langs) / self.temperature)

    def decide(self, P: np.ndarray) -> list[tuple[str, float]]:
        """(kind, confidence) per row; ``other`` when the top probability is below threshold.

        The confidence is the calibrated probability of the kind returned, so
        an ``other`` forced by the threshold carries its (low) own probability.
        """
        other = self.classes.index("other")
        out: list[tuple[str, float]] = []
        for row in np.asarray(P):
            best = int(row.argmax())
            if row[best] < self.threshold:
                best = other
            # never exactly 0: the miner reads ("other", 0.0) as "not classified yet"
            out.append((self.classes[best], round(max(float(row[best]), 0.001), 3)))
        return out

    def predict(
        self, X: np.ndarray, texts: Sequence[str], langs: Sequence[str]
    ) -> list[tuple[str, float]]:
        if not len(texts):
            return []
        out = self.decide(self.proba(X, texts, langs))
        if self.gate_centroid is None:
            return out
        V = np.asarray(X, dtype=np.float64)
        V = V / np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-12)
        near = V @ self.gate_centroid >= self.gate_min
        return [
            kc if ok or kc[0] == "other" else ("other", kc[1])
            for kc, ok in zip(out, near.tolist(), strict=True)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "classes": list(self.classes),
            "mean": np.round(self.mean, 6).tolist(),
            "scale": np.round(self.scale, 6).tolist(),
            "coef": np.round(self.coef, 6).tolist(),
            "intercept": np.round(self.intercept, 6).tolist(),
            "temperature": round(float(self.temperature), 6),
            "threshold": round(float(self.threshold), 6),
            "lexicon_weight": float(self.lexicon_weight),
            "meta": self.meta,
            "gate_centroid": (
                None if self.gate_centroid is None else np.round(self.gate_centroid, 6).tolist()
            ),
            "gate_min": round(float(self.gate_min), 6),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KindModel:
        classes = tuple(str(c) for c in data["classes"])
        if sorted(classes) != sorted(KINDS):
            raise ValueError(f"kind model classes {classes} differ from nlp.types.KINDS")
        return cls(
            classes=classes,
            mean=np.asarray(data["mean"], dtype=np.float64),
            scale=np.asarray(data["scale"], dtype=np.float64),
            coef=np.asarray(data["coef"], dtype=np.float64),
            intercept=np.asarray(data["intercept"], dtype=np.float64),
            temperature=float(data["temperature"]),
            threshold=float(data["threshold"]),
            lexicon_weight=float(data.get("lexicon_weight", 0.0)),
            meta=dict(data.get("meta", {})),
            gate_centroid=(
                None
                if data.get("gate_centroid") is None
                else np.asarray(data["gate_centroid"], dtype=np.float64)
            ),
            gate_min=float(data.get("gate_min", -1.0)),
        )

    @classmethod
    def load(cls, path: Path | None = None) -> KindModel:
        with open(path or WEIGHTS_PATH, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def save(self, path: Path) -> None:
        text = json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)
        Path(path).write_text(text + "\n", encoding="utf-8")


def _fit_logreg(Z: np.ndarray, y: np.ndarray, C: float) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression  # training only

    clf = LogisticRegression(C=C, max_iter=5000)
    clf.fit(Z, y)
    return np.asarray(clf.coef_, dtype=np.float64), np.asarray(clf.intercept_, dtype=np.float64)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood (golden section on log T)."""

    def nll(log_t: float) -> float:
        P = _softmax(logits / np.exp(log_t))
        return float(-np.log(P[np.arange(len(y)), y] + 1e-12).mean())

    lo, hi = float(np.log(0.05)), float(np.log(20.0))
    g = (np.sqrt(5.0) - 1.0) / 2.0
    for _ in range(80):
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        if nll(a) < nll(b):
            hi = b
        else:
            lo = a
    return float(np.exp((lo + hi) / 2.0))


def tune_threshold(
    P: np.ndarray,
    y: np.ndarray,
    other: int,
    abstain_credit: float = 0.5,
    fp_penalty: float = 0.0,
) -> float:
    """The top-probability cut below which ``other`` is answered.

    Maximises a utility in which a right kind scores 1, a wrong kind 0,
    answering ``other`` for a statement of another kind (abstaining) scores
    ``abstain_credit``, and giving a kind to a neutral statement (gold
    ``other``) scores ``-fp_penalty``: a missing kind costs the reader less
    than a wrong one, and a plain fact shown to a funder as a "lesson" or
    "best practice" costs most (real notes hold far more plain facts than the
    balanced training set suggests). Plain accuracy would never abstain on a
    balanced set. Ties go to the lowest cut.
    """
    best_t, best_u = 0.0, -np.inf
    top = P.argmax(1)
    for t in np.round(np.arange(0.0, 0.91, 0.01), 2):
        pred = np.where(P.max(1) >= t, top, other)
        abstained = (pred == other) & (y != other) & (top != other)
        false_kind = (pred != other) & (y == other)
        u = (
            float((pred == y).sum() + abstain_credit * abstained.sum())
            - fp_penalty * float(false_kind.sum())
        ) / len(y)
        if u > best_u + 1e-9:
            best_t, best_u = float(t), u
    return best_t


def lolo_logits(
    Z: np.ndarray, y: np.ndarray, langs: Sequence[str], C: float, folds: int | None = None
) -> np.ndarray:
    """Out-of-fold logits where every fold holds out whole languages.

    ``folds=None``: one fold per language; otherwise the sorted languages are
    dealt round-robin into ``folds`` groups (fewer fits, same property: no
    language is in its own fold's training data).
    """
    names = sorted(set(langs))
    n = len(names) if folds is None else max(2, min(folds, len(names)))
    group = {lang: i % n for i, lang in enumerate(names)}
    g = np.asarray([group[lang] for lang in langs])
    out = np.zeros((len(y), len(KINDS)))
    for k in range(n):
        te = g == k
        coef, icpt = _fit_logreg(Z[~te], y[~te], C)
        out[te] = Z[te] @ coef.T + icpt
    return out


def fit_kind_model(
    X: np.ndarray,
    texts: Sequence[str],
    langs: Sequence[str],
    kinds: Sequence[str],
    *,
    C: float = 1.0,
    lexicon_weight: float = 0.0,
    calibrate: bool = True,
    folds: int | None = None,
    fp_penalty: float = 0.0,
    gate_quantile: float = 0.0,
    meta: dict[str, Any] | None = None,
) -> KindModel:
    """Fit the classifier; temperature and threshold from leave-languages-out predictions.

    Deterministic (lbfgs on fixed data, no sampling). scikit-learn is needed
    here only; prediction is numpy.
    """
    X = np.asarray(X, dtype=np.float64)
    classes = tuple(KINDS)
    y = np.asarray([classes.index(k) for k in kinds])
    mean = X.mean(0)
    scale = X.std(0) + 1e-6
    empty = np.zeros(0)
    Z = KindModel(classes, mean, scale, empty, empty, lexicon_weight=lexicon_weight).features(
        X, texts, langs
    )
    temperature, threshold = 1.0, 0.0
    if calibrate and len(set(langs)) > 1:
        oof = lolo_logits(Z, y, langs, C, folds)
        temperature = fit_temperature(oof, y)
        threshold = tune_threshold(
            _softmax(oof / temperature), y, classes.index("other"), fp_penalty=fp_penalty
        )
    coef, icpt = _fit_logreg(Z, y, C)
    centroid, gate_min = None, -1.0
    if gate_quantile > 0:
        # the gate keeps all but the ``gate_quantile`` share of the training statements that
        # have a kind; tuned on training data only (never on the evaluation sets)
        U = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        has_kind = y != classes.index("other")
        centroid = U[has_kind].mean(0)
        centroid /= np.linalg.norm(centroid)
        gate_min = float(np.quantile(U[has_kind] @ centroid, gate_quantile))
    return KindModel(
        classes,
        mean,
        scale,
        coef,
        icpt,
        temperature,
        threshold,
        lexicon_weight,
        dict(meta or {}),
        centroid,
        gate_min,
    )


class KindClassifier:
    """The miner's kind stage: the shipped model on embeddings, cue lexicons without them.

    ``encode`` (texts -> unit embeddings: the miner's own encoder) is only used
    when ``classify`` gets no embeddings. The weights load on first use.
    """

    def __init__(
        self,
        encode: Callable[[Sequence[str]], np.ndarray] | None = None,
        model: KindModel | None = None,
        weights: Path | None = None,
    ) -> None:
        self.encode = encode
        self._model = model
        self._weights = weights

    @property
    def model(self) -> KindModel:
        if self._model is None:
            self._model = KindModel.load(self._weights)
        return self._model

    def warm(self) -> None:
        """Load the weights now rather than on the first statement."""
        _ = self.model

    def _prototypes(self) -> None:
        """Former name of ``warm`` (the prototype classifier it replaced)."""
        self.warm()

    def classify(
        self, texts: Sequence[str], langs: Sequence[str], embeddings: np.ndarray | None = None
    ) -> list[tuple[str, float]]:
        """(kind, calibrated confidence) per text, in order."""
        if not len(texts):
            return []
        if embeddings is None and self.encode is not None:
            embeddings = np.asarray(self.encode(list(texts)), dtype=np.float32)
        if embeddings is None:
            return [cue_kind(t, lg) for t, lg in zip(texts, langs, strict=True)]
        return self.model.predict(np.asarray(embeddings), texts, langs)

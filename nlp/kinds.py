"""Statement kinds: lesson, recommendation, best practice, challenge, success, other.

Two signals, combined per kind:

* cue lexicons per language (regular expressions over the lower-cased
  statement; en, sv, pl, de, et, fr). Cues are strong but sparse, and
  partners phrase things in many ways;
* similarity of the statement embedding to prototype statements of each kind
  (a few per kind in several languages, embedded once with the same encoder),
  which generalises across languages and catches statements without a cue.

A matching cue decides (prototypes only break ties between cue families, by
a fixed priority first); without any cue, the nearest prototype kind wins
when it beats the ``other`` prototypes by ``other_bonus``. Precision/recall on a
labelled set of our own
(tests/fixtures/nlp/kinds.jsonl) is printed by bench/kinds_quality.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

KIND_NAMES = ("lesson", "recommendation", "best_practice", "challenge", "success")

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

# Prototype statements (our own texts) per kind, several languages.
PROTOTYPES: dict[str, list[str]] = {
    "lesson": [
        "We learned that involving the local partners early saves time later.",
        "The main lesson is that informal contacts matter as much as the formal agenda.",
        "Vi lärde oss att det krävs tydliga roller från början.",
        "Nauczyliśmy się, że komunikacja między partnerami wymaga stałego rytmu.",
        "Wir haben gelernt, dass kleine Gruppen offener diskutieren.",
    ],
    "recommendation": [
        "We recommend agreeing on the reporting template before the first visit.",
        "Next time, the agenda should be shared two weeks in advance.",
        "Nästa gång bör vi boka lokalen i god tid.",
        "Zalecamy, aby każdy partner wyznaczył osobę kontaktową.",
        "Wir empfehlen, die Übersetzung frühzeitig zu planen.",
    ],
    "best_practice": [
        "Pairing a new partner with an experienced one worked very well and is worth repeating.",
        "A good practice is to end each workshop with a short written summary.",
        "Det fungerade mycket bra att börja dagen med studiebesök.",
        "Dobrą praktyką okazały się krótkie spotkania online co dwa tygodnie.",
        "Bewährt hat sich ein gemeinsamer Kalender für alle Partner.",
    ],
    "challenge": [
        "The biggest difficulty was finding a date that suited all partners.",
        "Unfortunately the translation of materials caused long delays.",
        "Det var svårt att få deltagare från landsbygden.",
        "Problemem był brak wspólnego języka roboczego.",
        "Leider fehlte es an Zeit für den Austausch.",
    ],
    "success": [
        "We managed to train forty teachers, more than planned.",
        "The final conference was a great success with over a hundred participants.",
        "Vi lyckades öka antalet deltagare med en tredjedel.",
        "Udało się nam uruchomić wspólną platformę przed terminem.",
        "Die Ausstellung war ein großer Erfolg.",
    ],
    "other": [
        "The meeting took place in the town hall on Tuesday.",
        "Six partners attended, two joined online.",
        "Mötet hölls i Uppsala.",
        "Spotkanie prowadziła koordynatorka projektu.",
        "Das nächste Treffen ist im Mai.",
    ],
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


class KindClassifier:
    """Cue lexicons plus prototype similarity; see the module docstring."""

    def __init__(
        self,
        encode: Callable[[Sequence[str]], np.ndarray] | None = None,
        proto_weight: float = 4.0,
        other_bonus: float = 0.03,
    ) -> None:
        self.encode = encode
        self.proto_weight = proto_weight
        self.other_bonus = other_bonus
        self._protos: np.ndarray | None = None
        self._proto_kinds: list[str] = []

    def _prototypes(self) -> np.ndarray | None:
        if self.encode is None:
            return None
        if self._protos is None:
            kinds: list[str] = []
            texts: list[str] = []
            for k, items in PROTOTYPES.items():
                kinds.extend([k] * len(items))
                texts.extend(items)
            self._protos = np.asarray(self.encode(texts), dtype=np.float32)
            self._proto_kinds = kinds
        return self._protos

    def classify(
        self, texts: Sequence[str], langs: Sequence[str], embeddings: np.ndarray | None = None
    ) -> list[tuple[str, float]]:
        protos = self._prototypes() if embeddings is not None else None
        sims: np.ndarray | None = None
        names = [*KIND_NAMES, "other"]
        if protos is not None and embeddings is not None and len(texts):
            raw = np.asarray(embeddings, dtype=np.float32) @ protos.T  # (n, p)
            kinds = np.asarray(self._proto_kinds)
            per_kind = np.stack([raw[:, kinds == k].max(1) for k in names], axis=1)
            sims = per_kind - per_kind.mean(1, keepdims=True)
        out: list[tuple[str, float]] = []
        for i, (t, lg) in enumerate(zip(texts, langs, strict=True)):
            cues = cue_scores(t, lg)
            scores = dict.fromkeys(names, 0.0)
            if cues:
                # a cue decides; prototypes only break ties between cue families
                for k, v in cues.items():
                    scores[k] = v + (
                        0.5 * float(sims[i, names.index(k)]) if sims is not None else 0.0
                    )
                best = max(cues, key=lambda k: scores[k])
                conf = min(1.0, 0.7 + 0.1 * scores[best])
            elif sims is not None:
                row = {k: float(sims[i, j]) for j, k in enumerate(names)}
                row["other"] += self.other_bonus
                best = max(names, key=lambda k: row[k])
                conf = min(0.69, 0.4 + self.proto_weight * max(0.0, row[best]))
            else:
                best, conf = "other", 0.5
            out.append((best, float(round(conf, 3))))
        return out

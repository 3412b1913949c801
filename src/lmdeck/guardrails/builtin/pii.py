"""PII: personal data in a text (emails, phone numbers, cards, IBANs, IPs, national ids), as spans to mask.

Detection is Microsoft Presidio's analyzer with its pattern recognizers (regular expressions
plus checksums: Luhn for cards, mod-97 for IBANs, the SSA's rules for SSNs) and
python-phonenumbers for phone numbers. Presidio needs an NLP engine for the words around a
match ("card", "ssn", "phone" raise a match's score); lmdeck gives it a blank spaCy English
pipeline (a tokenizer, no model, nothing downloaded) whose lemma is the lower-cased word.

Names (``PERSON``) need a named-entity model. None ships in a package on PyPI from its
authors, so names are not found unless ``ner_model`` names a spaCy pipeline that is already
installed (a package such as ``en_core_web_sm`` or a folder): lmdeck never downloads one.

The analyzer is built on the first check (Presidio's import and recognizers take seconds),
once per distinct configuration, under a lock, and shared; each check runs in a worker
thread so that the event loop never waits on it::

    guard = PiiGuardrail(GuardResources(), entities=["EMAIL_ADDRESS"])
    verdict = await guard.check("write to ana@example.org", GuardContext(stage="input"))
    verdict.spans  # (Span(start=9, end=25, entity='EMAIL_ADDRESS', score=1.0),)
"""

from __future__ import annotations

import functools
import importlib.util
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmdeck.guardrails.base import (
    PASS,
    CostClass,
    GuardContext,
    GuardrailError,
    GuardResources,
    Span,
    Stage,
    TooLargeToCheck,
    Verdict,
    run_blocking,
)
from lmdeck.guardrails.builtin.spans import count_reason, resolve_overlaps
from lmdeck.guardrails.registry import GuardrailRegistry

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, EntityRecognizer

#: Found unless ``entities`` says otherwise: the structured types with a checksum or a strict format.
DEFAULT_ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_SSN",
    "UK_NINO",
)

#: Texts longer than this are analysed in overlapping windows of this many characters (spaCy refuses
#: a text over its ``max_length``, 1,000,000 characters, and its memory grows with the text).
WINDOW_CHARS = 100_000
#: How much consecutive windows overlap: an entity shorter than half of it is found whole on a border.
OVERLAP_CHARS = 2_000
#: Texts longer than this are not checked but refused (``max_chars``): the check's time grows with the text.
DEFAULT_MAX_CHARS = 200_000

#: Presidio's regions for numbers written without a country code (``+44 …`` is found whatever the region).
DEFAULT_PHONE_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "IL", "IN", "CA", "BR")

#: IBAN-shaped text: a phone number inside it is a piece of an account number that failed its check.
_IBAN_SHAPE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")

#: A dotted quad right after these words (or a requirement's ``==``) is a version or a build, not an address.
_VERSION_BEFORE = re.compile(r"(?:\bv|\bversion|\brelease|\bbuild|\bver\.?|[=~<>]=)\s*$", re.IGNORECASE)

#: Four groups of four digits: a card number that failed its Luhn check, not a phone number.
_CARD_SHAPE = re.compile(r"\d{4}([ -]?)\d{4}\1\d{4}\1\d{4}")


def _recognizer_builders() -> dict[str, Callable[[], list[EntityRecognizer]]]:
    """Entity type → the Presidio recognizers that find it (imported here: Presidio's import takes seconds)."""
    from presidio_analyzer import predefined_recognizers as pr

    email = _offline_email_recognizer()
    return {
        "EMAIL_ADDRESS": lambda: [email()],
        "PHONE_NUMBER": lambda: [],  # built with its regions in _build_analyzer
        "CREDIT_CARD": lambda: [_card_recognizer()],
        "IBAN_CODE": lambda: [pr.IbanRecognizer()],
        "IP_ADDRESS": lambda: [pr.IpRecognizer()],
        "MAC_ADDRESS": lambda: [pr.MacAddressRecognizer()],
        "CRYPTO": lambda: [pr.CryptoRecognizer()],
        "US_SSN": lambda: [pr.UsSsnRecognizer()],
        "US_ITIN": lambda: [pr.UsItinRecognizer()],
        "US_PASSPORT": lambda: [pr.UsPassportRecognizer()],
        "US_BANK_NUMBER": lambda: [pr.UsBankRecognizer()],
        "US_DRIVER_LICENSE": lambda: [pr.UsLicenseRecognizer()],
        "UK_NINO": lambda: [pr.UkNinoRecognizer()],
        "UK_NHS": lambda: [pr.NhsRecognizer()],
        "ES_NIF": lambda: [pr.EsNifRecognizer(supported_language="en")],
        "IT_FISCAL_CODE": lambda: [pr.ItFiscalCodeRecognizer(supported_language="en")],
        "IN_PAN": lambda: [pr.InPanRecognizer()],
        "IN_AADHAAR": lambda: [pr.InAadhaarRecognizer()],
        "SG_NRIC_FIN": lambda: [pr.SgFinRecognizer()],
        "AU_TFN": lambda: [pr.AuTfnRecognizer()],
    }


#: Every entity type the ``entities`` option accepts (``PERSON`` … only with ``ner_model``).
SUPPORTED_ENTITIES: tuple[str, ...] = (
    *DEFAULT_ENTITIES,
    "MAC_ADDRESS",
    "CRYPTO",
    "US_ITIN",
    "US_PASSPORT",
    "US_BANK_NUMBER",
    "US_DRIVER_LICENSE",
    "UK_NHS",
    "ES_NIF",
    "IT_FISCAL_CODE",
    "IN_PAN",
    "IN_AADHAAR",
    "SG_NRIC_FIN",
    "AU_TFN",
)

#: Entity types that only a named-entity model (``ner_model``) finds.
NER_ENTITIES: tuple[str, ...] = ("PERSON", "LOCATION", "NRP")


def _offline_email_recognizer() -> Callable[[], EntityRecognizer]:
    """Presidio's email recognizer, checking the domain's suffix against the list bundled with tldextract.

    Presidio's own calls ``tldextract.extract``, which fetches the public suffix list from the
    internet on first use; this one never does.
    """
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    extract = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)

    class OfflineEmailRecognizer(EmailRecognizer):  # type: ignore[misc]
        def validate_result(self, pattern_text: str) -> bool:
            return bool(extract(pattern_text).fqdn)

    return OfflineEmailRecognizer


def _card_recognizer() -> EntityRecognizer:
    """Presidio's card recognizer (Luhn-checked) plus Mastercard's 2221-2720 range, which its pattern lacks."""
    from presidio_analyzer import Pattern
    from presidio_analyzer.predefined_recognizers import CreditCardRecognizer

    two_series = Pattern(
        "Mastercard 2-series (weak)",
        r"\b(2(?:22[1-9]|2[3-9]\d|[3-6]\d{2}|7[01]\d|720))[- ]?(\d{4})[- ]?(\d{4})[- ]?(\d{4})\b",
        0.3,
    )
    return CreditCardRecognizer(patterns=[*CreditCardRecognizer.PATTERNS, two_series])


#: Numbers a bare digit run scores without a context word ("phone", "call"…) nearby: under the default threshold.
_BARE_DIGITS_SCORE = 0.3


#: A run of digits and the separators phone numbers use: where a phone number may be.
_PHONE_CANDIDATE = re.compile(r"[+(]?\d[\d \t().\-/]{4,}\d")


@dataclass(frozen=True)
class _Found:
    start: int
    end: int


def _phone_recognizer(regions: tuple[str, ...]) -> EntityRecognizer:
    """Presidio's phone recognizer (python-phonenumbers), doubting bare digit runs.

    Ten digits with no ``+``, space, dash, dot or bracket are as often a timestamp or an id as
    a phone number: they score below the default threshold unless a context word lifts them.
    """
    import phonenumbers
    from presidio_analyzer import EntityRecognizer as PresidioRecognizer
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    class ContextualPhoneRecognizer(PhoneRecognizer):  # type: ignore[misc]
        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            results = []
            # python-phonenumbers scans the whole text once per region; scanning only the runs of
            # digits and separators (with two characters of context each side) is many times faster
            for candidate in _PHONE_CANDIDATE.finditer(text):
                low, high = max(0, candidate.start() - 2), min(len(text), candidate.end() + 2)
                window = text[low:high]
                # a number written with its +country code reads the same in every region
                regions = self.supported_regions[:1] if candidate.group().startswith("+") else self.supported_regions
                for region in regions:
                    for match in phonenumbers.PhoneNumberMatcher(
                        window, region, leniency=1 if self.leniency is None else self.leniency
                    ):
                        try:
                            found_in = phonenumbers.region_code_for_number(phonenumbers.parse(match.raw_string))
                        except phonenumbers.NumberParseException:
                            found_in = region
                        where = _Found(low + match.start, low + match.end)
                        result = self._get_recognizer_result(where, text, found_in, nlp_artifacts)
                        if text[where.start : where.end].isdigit():
                            result.score = min(result.score, _BARE_DIGITS_SCORE)
                        results.append(result)
            return list(PresidioRecognizer.remove_duplicates(results))

    return ContextualPhoneRecognizer(supported_regions=regions)


def _nlp_engine(ner_model: str | None) -> Any:
    """A Presidio NLP engine over a blank spaCy English pipeline, or over the installed pipeline ``ner_model``."""
    import spacy
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from spacy.language import Language

    if "lmdeck_lower_lemma" not in Language.factories:

        @Language.component("lmdeck_lower_lemma")
        def lower_lemma(doc: Any) -> Any:
            # Presidio matches context words ("card", "ssn") against lemmas; a blank pipeline has none.
            for token in doc:
                token.lemma_ = token.lower_
            return doc

    if ner_model is None:
        nlp = spacy.blank("en")
        nlp.add_pipe("lmdeck_lower_lemma")
    else:
        nlp = spacy.load(ner_model)

    class PreloadedSpacyNlpEngine(SpacyNlpEngine):  # type: ignore[misc]
        def load(self) -> None:
            self.nlp = {"en": nlp}  # type: ignore[assignment]

    engine = PreloadedSpacyNlpEngine(models=[{"lang_code": "en", "model_name": ner_model or "blank:en"}])
    engine.load()
    return engine


_build_lock = threading.Lock()


@functools.lru_cache(maxsize=16)
def _cached_analyzer(
    entities: tuple[str, ...], phone_regions: tuple[str, ...], ner_model: str | None
) -> AnalyzerEngine:
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    builders = _recognizer_builders()
    recognizers: list[EntityRecognizer] = []
    for entity in entities:
        if entity in builders:
            recognizers.extend(builders[entity]())
    if "PHONE_NUMBER" in entities:
        recognizers.append(_phone_recognizer(phone_regions))
    ner = [e for e in entities if e in NER_ENTITIES]
    if ner:
        recognizers.append(SpacyRecognizer(supported_entities=ner))
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=["en"])
    return AnalyzerEngine(registry=registry, nlp_engine=_nlp_engine(ner_model), supported_languages=["en"])


def _analyzer(entities: tuple[str, ...], phone_regions: tuple[str, ...], ner_model: str | None) -> AnalyzerEngine:
    # lru_cache alone may build twice when two threads miss at once; the lock makes the first build the only one.
    with _build_lock:
        return _cached_analyzer(entities, phone_regions, ner_model)


class PiiDetector:
    """Finds PII in a text: ``spans(text) -> list[Span]`` (blocking; the analyzer is built on first use).

    >>> PiiDetector(entities=("IP_ADDRESS",)).spans("ping 10.0.0.7 and release 1.2.3.4")
    [Span(start=5, end=13, entity='IP_ADDRESS', score=0.6)]
    """

    def __init__(
        self,
        entities: Sequence[str] = DEFAULT_ENTITIES,
        score_threshold: float = 0.4,
        phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS,
        ner_model: str | None = None,
        window_chars: int = WINDOW_CHARS,
        overlap_chars: int = OVERLAP_CHARS,
    ) -> None:
        if not 0 < overlap_chars < window_chars:
            raise ValueError(f"overlap_chars must be in (0, window_chars), got {overlap_chars} and {window_chars}")
        self.entities = tuple(entities)
        self.score_threshold = score_threshold
        self.phone_regions = tuple(phone_regions)
        self.ner_model = ner_model
        self.window_chars = window_chars
        self.overlap_chars = overlap_chars

    def analyzer(self) -> AnalyzerEngine:
        """The shared Presidio analyzer for this configuration (built on the first call, seconds)."""
        return _analyzer(self.entities, self.phone_regions, self.ner_model)

    def spans(self, text: str) -> list[Span]:
        """Non-overlapping spans of ``text`` with a score >= ``score_threshold``, in text order.

        A text longer than ``window_chars`` is analysed in windows of that many characters that
        overlap by ``overlap_chars``; each window keeps the spans that start in its own part (the
        middle of the overlap is the border), so an entity shorter than half the overlap that
        straddles a border is found whole, once, and every span is mapped back to its place in
        ``text``. spaCy's ``max_length`` is never reached, whatever the length.
        """
        if len(text) <= self.window_chars:
            return self._window_spans(text)
        half = self.overlap_chars // 2
        step = self.window_chars - self.overlap_chars
        found: list[Span] = []
        low = 0
        while True:
            high = min(len(text), low + self.window_chars)
            last = high == len(text)
            own_from = low + half if low else 0
            own_to = len(text) if last else high - half
            for span in self._window_spans(text[low:high]):
                start = low + span.start
                if own_from <= start < own_to:
                    found.append(Span(start, low + span.end, span.entity, span.score))
            if last:
                return resolve_overlaps(found)
            low += step

    def _window_spans(self, text: str) -> list[Span]:
        if not text.strip():
            return []
        results = self.analyzer().analyze(
            text=text, language="en", entities=list(self.entities), score_threshold=self.score_threshold
        )
        ibans = [m.span() for m in _IBAN_SHAPE.finditer(text)] if "PHONE_NUMBER" in self.entities else []
        found = []
        for r in results:
            if r.end <= r.start:
                continue
            if r.entity_type == "IP_ADDRESS" and _VERSION_BEFORE.search(text, 0, r.start):
                continue
            if r.entity_type == "PHONE_NUMBER" and (
                any(a <= r.start and r.end <= b for a, b in ibans) or _CARD_SHAPE.fullmatch(text, r.start, r.end)
            ):
                continue
            found.append(Span(r.start, r.end, r.entity_type, round(min(max(float(r.score), 0.0), 1.0), 4)))
        return resolve_overlaps(found)


def _installed(package: str) -> bool:
    """Whether ``package`` (a spaCy pipeline's package name) can be imported, without importing it."""
    try:
        return importlib.util.find_spec(package.replace("-", "_")) is not None
    except (ImportError, ValueError):
        return False  # "./models/x" (a relative name) or "a.b" whose parent is not installed


def _options(
    entities: Sequence[str] | None, score_threshold: float, phone_regions: Sequence[str], ner_model: str | None
) -> tuple[tuple[str, ...], float, tuple[str, ...], str | None]:
    if entities is None:
        chosen = DEFAULT_ENTITIES
    elif isinstance(entities, str) or not all(isinstance(e, str) for e in entities) or not entities:
        raise GuardrailError(
            "pii: entities must be a non-empty list of entity types, e.g. [EMAIL_ADDRESS, CREDIT_CARD]"
        )
    else:
        chosen = tuple(dict.fromkeys(e.upper() for e in entities))
    allowed = set(SUPPORTED_ENTITIES) | (set(NER_ENTITIES) if ner_model else set())
    unknown = [e for e in chosen if e not in allowed]
    if unknown:
        hint = " (names need ner_model: an installed spaCy pipeline)" if set(unknown) & set(NER_ENTITIES) else ""
        raise GuardrailError(
            f"pii: unknown entity type(s) {', '.join(unknown)}{hint}; known: {', '.join(sorted(allowed))}"
        )
    if isinstance(score_threshold, bool) or not isinstance(score_threshold, int | float):
        raise GuardrailError("pii: score_threshold must be a number in [0, 1], e.g. 0.4")
    if not 0.0 <= float(score_threshold) <= 1.0:
        raise GuardrailError(f"pii: score_threshold must be in [0, 1], got {score_threshold!r}")
    if isinstance(phone_regions, str) or not all(isinstance(r, str) and len(r) == 2 for r in phone_regions):
        raise GuardrailError('pii: phone_regions must be a list of two-letter region codes, e.g. ["US", "GB"]')
    if ner_model is not None:
        if not isinstance(ner_model, str) or not ner_model:
            raise GuardrailError("pii: ner_model must be the name or path of an installed spaCy pipeline")
        if not Path(ner_model).exists() and not _installed(ner_model):
            raise GuardrailError(
                f"pii: ner_model {ner_model!r} is not an installed spaCy pipeline; install its package "
                "(lmdeck downloads nothing at run time) or drop ner_model to use the pattern recognizers only"
            )
    return chosen, float(score_threshold), tuple(r.upper() for r in phone_regions), ner_model


class PiiGuardrail:
    """Personal data (Presidio): a ``mask`` verdict with one span per email, phone, card, IBAN, IP or national id.

    Options: ``entities`` (default EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, IBAN_CODE,
    IP_ADDRESS, US_SSN, UK_NINO; more in ``SUPPORTED_ENTITIES``), ``score_threshold`` (0.4:
    Presidio's score below which a match is dropped; checksummed matches score 1.0),
    ``phone_regions`` (where numbers without a ``+country`` prefix are read), ``ner_model``
    (an installed spaCy pipeline, to find PERSON), ``max_chars`` (200,000: a longer text is not
    checked but refused, 413 on input; texts over 100,000 characters are analysed in overlapping
    windows). The reason names entity types and counts,
    never the text found.
    """

    name = "pii"
    cost: CostClass = "fast"
    stages: frozenset[Stage] = frozenset({"input", "output"})

    def __init__(
        self,
        resources: GuardResources | None = None,
        entities: Sequence[str] | None = None,
        score_threshold: float = 0.4,
        phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS,
        ner_model: str | None = None,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        chosen, threshold, regions, model = _options(entities, score_threshold, phone_regions, ner_model)
        if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
            raise GuardrailError(f"pii: max_chars must be a positive whole number of characters, got {max_chars!r}")
        self.max_chars = max_chars
        self.detector = PiiDetector(chosen, threshold, regions, model)

    def warm(self) -> None:
        """Build the analyzer now (blocking, seconds) rather than on the first check."""
        # one analysis loads what the recognizers load lazily (the public suffix list of emails)
        self.detector.spans("warm-up ana@example.org +1 415 555 0132")

    async def check(self, text: str, ctx: GuardContext) -> Verdict:
        """The ``mask`` verdict; raises TooLargeToCheck for a text over ``max_chars`` characters."""
        if len(text) > self.max_chars:
            raise TooLargeToCheck(f"{len(text)} characters, over max_chars {self.max_chars}")
        spans = await run_blocking(self.detector.spans, text)
        if not spans:
            return PASS
        reason = count_reason("PII", spans)
        return Verdict("mask", score=max(s.score for s in spans), reason=reason, spans=tuple(spans))


def register(registry: GuardrailRegistry) -> None:
    registry.add("pii", PiiGuardrail)

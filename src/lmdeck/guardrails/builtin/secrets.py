"""Secrets: API keys, tokens, passwords and private keys in a text, as spans to mask or a reason to refuse.

Two sources, both pattern-based:

- Yelp's ``detect-secrets`` plugins (AWS, Azure storage, GitHub, GitLab, Slack, Stripe,
  Twilio, SendGrid, npm, PyPI, OpenAI, Discord, Telegram, Mailchimp, JWTs with their JSON
  checked, basic-auth URLs, ``password: …`` assignments…), run line by line through each
  plugin's ``analyze_string`` (its own patterns and checks; never its ``verify``, which calls
  the provider over the network);
- lmdeck's own patterns for what those miss in prompts: whole PEM private-key blocks
  (``-----BEGIN … PRIVATE KEY-----`` to the matching END, escaped ``\\n`` in JSON included),
  ``Bearer`` tokens, Google API keys, Anthropic, OpenAI project and Hugging Face tokens.

Entity types are the plugin's name in capitals (``AWS_ACCESS_KEY``, ``JSON_WEB_TOKEN``,
``SECRET_KEYWORD``) or lmdeck's (``PRIVATE_KEY``, ``BEARER_TOKEN``…)::

    guard = SecretsGuardrail()
    verdict = await guard.check("use AKIAIOSFODNN7EXAMPLE", GuardContext(stage="input"))
    verdict.spans  # (Span(start=4, end=24, entity='AWS_ACCESS_KEY', score=1.0),)
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from lmdeck.guardrails.base import (
    PASS,
    CostClass,
    GuardContext,
    GuardrailError,
    GuardResources,
    Span,
    Stage,
    Verdict,
    run_blocking,
)
from lmdeck.guardrails.builtin.spans import count_reason, resolve_overlaps
from lmdeck.guardrails.registry import GuardrailRegistry

#: detect-secrets plugins left out by default: public IPs are the pii guardrail's; entropy alone flags hashes and ids.
_OPT_IN_PLUGINS = frozenset({"Public IP (ipv4)", "Base64 High Entropy String", "Hex High Entropy String"})

#: The score of a match by a plugin that only sees a keyword (``password: …``) rather than a key's own format.
_KEYWORD_SCORE = 0.8
_ENTROPY_SCORE = 0.6

#: Plugins that see where a secret sits (a URL's password) rather than its format: a token's own type wins over them.
_GENERIC_PLUGINS = {"Basic Auth Credentials": 0.9}


@dataclass(frozen=True)
class _Pattern:
    entity: str
    regex: re.Pattern[str]
    group: int = 0


#: lmdeck's own patterns, for secrets detect-secrets has no plugin for (or sees only one line of).
PATTERNS: tuple[_Pattern, ...] = (
    _Pattern(
        "PRIVATE_KEY",
        re.compile(
            r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY((?: BLOCK)?)-----"
            # to its END line; a block cut short ends with its last line of base64
            r"(?:.*?-----END \1PRIVATE KEY\2-----|(?:(?:\\n|\s)+[A-Za-z0-9+/=]{4,})*)",
            re.DOTALL,
        ),
    ),
    # detect-secrets' JWT pattern stops before the signature; this one takes the whole token
    _Pattern("JSON_WEB_TOKEN", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_\-+/=]*")),
    _Pattern("BEARER_TOKEN", re.compile(r"\bBearer[ \t]+([A-Za-z0-9\-._~+/]{20,}=*)"), 1),
    _Pattern("GOOGLE_API_KEY", re.compile(r"\bAIza[0-9A-Za-z\-_]{35}(?![0-9A-Za-z\-_])")),
    _Pattern("ANTHROPIC_API_KEY", re.compile(r"\bsk-ant-[a-z0-9]+-[A-Za-z0-9\-_]{32,}")),
    _Pattern("OPENAI_API_KEY", re.compile(r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9\-_]{32,}")),
    _Pattern("HUGGINGFACE_TOKEN", re.compile(r"\bhf_[A-Za-z]{34}\b")),
)


def _entity(secret_type: str) -> str:
    """``"AWS Access Key"`` → ``"AWS_ACCESS_KEY"``."""
    return re.sub(r"[^A-Z0-9]+", "_", secret_type.upper()).strip("_")


class _Plugins:
    """detect-secrets' plugin instances, built on first use (importing them takes a fraction of a second)."""

    def __init__(self, entropy: bool) -> None:
        self.entropy = entropy
        self._lock = threading.Lock()
        self._plugins: list[tuple[str, Any]] | None = None
        self._keyword_regexes: Any = None

    def plugins(self) -> list[tuple[str, Any]]:
        with self._lock:
            if self._plugins is None:
                from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
                from detect_secrets.plugins.keyword import REGEX_BY_FILETYPE
                from detect_secrets.util.filetype import FileType

                skip = _OPT_IN_PLUGINS - (
                    {"Base64 High Entropy String", "Hex High Entropy String"} if self.entropy else set()
                )
                mapping: dict[str, Any] = get_mapping_from_secret_type_to_class()
                self._plugins = [(name, cls()) for name, cls in sorted(mapping.items()) if name not in skip]
                # "password: x" and "password = x" unquoted, as in config files and prose, not only quoted as in code
                self._keyword_regexes = REGEX_BY_FILETYPE[FileType.YAML]
            return self._plugins

    def find(self, line: str) -> Iterator[tuple[str, int, int, float]]:
        """(entity, start, end, score) for each secret a plugin finds in ``line``."""
        from detect_secrets.plugins.base import RegexBasedDetector

        for name, plugin in self.plugins():
            entity = _entity(name)
            if isinstance(plugin, RegexBasedDetector):
                for regex in plugin.denylist:
                    for match in regex.finditer(line):
                        # the plugin's own checks (a JWT's JSON, …) on what its pattern matched
                        if any(plugin.analyze_string(match.group(0))):
                            yield (entity, *_secret_span(match), _GENERIC_PLUGINS.get(name, 1.0))
            elif name == "Secret Keyword":
                for regex, group in self._keyword_regexes.items():
                    for match in regex.finditer(line):
                        value = match.group(group)
                        if not value or not value.strip():
                            continue
                        words = value.split()
                        separator = line[match.start() : match.start(group)]
                        if len(words) > 1 and ":" in separator and "=" not in separator:
                            continue  # "password: see the vault" is prose, not an assignment
                        # unquoted, the pattern runs to the end of the line: the value ends at a space
                        start = match.start(group)
                        yield entity, start, start + len(words[0]), _KEYWORD_SCORE
            elif hasattr(plugin, "entropy_limit"):
                for value in set(plugin.analyze_string(line)):
                    if plugin.calculate_shannon_entropy(value) > plugin.entropy_limit:
                        for at in _occurrences(line, value):
                            yield entity, at, at + len(value), _ENTROPY_SCORE


def _secret_span(match: re.Match[str]) -> tuple[int, int]:
    """Where the secret is in a plugin's match: its last captured group when that is the value
    (``password`` of ``user:password@``), else the whole match (GitHub's group is only the
    ``ghp`` prefix) without the delimiters some patterns include."""
    groups = [i for i in range(1, (match.re.groups or 0) + 1) if match.group(i)]
    if groups and len(match.group(groups[-1])) >= 8:
        return match.span(groups[-1])
    start, end = match.span()
    text = match.string
    while start < end and text[start] in _DELIMITERS:
        start += 1
    while end > start and text[end - 1] in _DELIMITERS:
        end -= 1
    return start, end


_DELIMITERS = frozenset(" \t\r\n=:\"'")


def _occurrences(line: str, value: str) -> Iterator[int]:
    start = line.find(value)
    while start >= 0:
        yield start
        start = line.find(value, start + len(value))


class SecretsDetector:
    """Finds secrets in a text: ``spans(text) -> list[Span]`` (blocking).

    >>> SecretsDetector().spans("token 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")
    [Span(start=6, end=46, entity='GITHUB_TOKEN', score=1.0)]
    """

    def __init__(self, entropy: bool = False, keywords: bool = True) -> None:
        self.keywords = keywords
        self._plugins = _Plugins(entropy)

    def warm(self) -> None:
        self._plugins.plugins()

    def spans(self, text: str) -> list[Span]:
        found: list[Span] = []
        for pattern in PATTERNS:
            for match in pattern.regex.finditer(text):
                start, end = match.span(pattern.group)
                end = start + len(text[start:end].rstrip())
                if end > start:
                    found.append(Span(start, end, pattern.entity, 1.0))
        offset = 0
        for line in text.splitlines(keepends=True):
            if line.strip():
                for entity, start, end, score in self._plugins.find(line):
                    if end > start and (self.keywords or entity != "SECRET_KEYWORD"):
                        found.append(Span(offset + start, offset + end, entity, score))
            offset += len(line)
        return resolve_overlaps(found)


class SecretsGuardrail:
    """Secrets (detect-secrets plus private-key blocks and bearer tokens): a ``mask`` verdict with their spans.

    Options: ``keywords`` (True: also ``password: …``/``api_key = …`` assignments, whatever the
    value looks like), ``entropy`` (False: also any quoted base64/hex string of high entropy,
    which flags quoted hashes and ids too). The reason names entity types and counts, never the secret.
    """

    name = "secrets"
    cost: CostClass = "fast"
    stages: frozenset[Stage] = frozenset({"input", "output"})

    def __init__(self, resources: GuardResources | None = None, keywords: bool = True, entropy: bool = False) -> None:
        for option, value in (("keywords", keywords), ("entropy", entropy)):
            if not isinstance(value, bool):
                raise GuardrailError(f"secrets: {option} must be true or false, got {value!r}")
        self.detector = SecretsDetector(entropy=entropy, keywords=keywords)

    def warm(self) -> None:
        """Build detect-secrets' plugins now (blocking) rather than on the first check."""
        self.detector.warm()

    async def check(self, text: str, ctx: GuardContext) -> Verdict:
        spans: Sequence[Span] = await run_blocking(self.detector.spans, text)
        if not spans:
            return PASS
        return Verdict(
            "mask", score=max(s.score for s in spans), reason=count_reason("secrets", spans), spans=tuple(spans)
        )


def register(registry: GuardrailRegistry) -> None:
    registry.add("secrets", SecretsGuardrail)

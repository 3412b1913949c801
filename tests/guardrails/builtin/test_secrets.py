"""The secrets guardrail: detect-secrets' plugins plus private-key blocks and tokens, exact spans, no secret in reasons."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lmdeck.guardrails.base import GuardContext, GuardrailError, Span
from lmdeck.guardrails.builtin import secrets
from lmdeck.guardrails.builtin.secrets import SecretsDetector, SecretsGuardrail
from lmdeck.guardrails.registry import GuardrailRegistry

INPUT = GuardContext(stage="input")
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
RSA_BLOCK = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234abcd\nqwerty==\n-----END RSA PRIVATE KEY-----"


def found(text: str, spans: list[Span] | tuple[Span, ...]) -> list[tuple[str, str]]:
    return [(text[s.start : s.end], s.entity) for s in spans]


@pytest.fixture(scope="module")
def detector() -> SecretsDetector:
    return SecretsDetector()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("use AKIAIOSFODNN7EXAMPLE for s3", [("AKIAIOSFODNN7EXAMPLE", "AWS_ACCESS_KEY")]),
        (
            "aws_secret_access_key = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'",
            [("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AWS_ACCESS_KEY")],
        ),
        (
            "token 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 ok",
            [("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", "GITHUB_TOKEN")],
        ),
        (f"Authorization: Bearer {JWT}", [(JWT, "JSON_WEB_TOKEN")]),
        (
            "Authorization: Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0",
            [("9f8e7d6c5b4a39281706f5e4d3c2b1a0", "BEARER_TOKEN")],
        ),
        (f"the cookie is {JWT}.", [(JWT, "JSON_WEB_TOKEN")]),
        (f"key:\n{RSA_BLOCK}\nthanks", [(RSA_BLOCK, "PRIVATE_KEY")]),
        (
            '{"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n-----END PRIVATE KEY-----\\n"}',
            [("-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n-----END PRIVATE KEY-----", "PRIVATE_KEY")],
        ),
        (
            "cut -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5v\nAAAA",
            [("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5v\nAAAA", "PRIVATE_KEY")],
        ),
        ("password: hunter2!x", [("hunter2!x", "SECRET_KEYWORD")]),
        ("DB_PASSWORD=s3cr3t-Value in the .env", [("s3cr3t-Value", "SECRET_KEYWORD")]),
        ("postgres://app:pa55word@db.internal/app", [("pa55word", "BASIC_AUTH_CREDENTIALS")]),
        (
            "git clone https://oauth2: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@github.com/a/b.git",
            [("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", "GITHUB_TOKEN")],  # the token's own type wins
        ),
        ("password = see the vault", [("see", "SECRET_KEYWORD")]),
        (
            "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789ABCDEF",
            [("sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789ABCDEF", "ANTHROPIC_API_KEY")],
        ),
        (
            "key sk-proj-abcdefghijklmnopqrstuvwxyz0123456789AB",
            [("sk-proj-abcdefghijklmnopqrstuvwxyz0123456789AB", "OPENAI_API_KEY")],
        ),
        ("AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe", [("AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe", "GOOGLE_API_KEY")]),
        ("HF hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh", [("hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh", "HUGGINGFACE_TOKEN")]),
        (
            "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
            [("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "SLACK_TOKEN")],
        ),
        ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", [("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "STRIPE_ACCESS_KEY")]),
        ("line one\nline two has AKIAIOSFODNN7EXAMPLE", [("AKIAIOSFODNN7EXAMPLE", "AWS_ACCESS_KEY")]),
    ],
)
def test_finds_secrets_at_exact_offsets(detector: SecretsDetector, text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text, detector.spans(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "How do I rotate my API key safely? The password field is required.",
        "my password is hunter2",  # prose, no assignment: detect-secrets' keyword rules need `password: value`
        "password: see the vault",  # words after `password:` are prose, not a value
        "the sha is 3f786850e387550fdab836ed7e6dc881de23001b",
        "server at 203.0.113.9",
        "",
    ],
)
def test_prose_about_secrets_and_ordinary_ids_pass(detector: SecretsDetector, text: str) -> None:
    assert detector.spans(text) == []


def test_entropy_finds_unlabelled_random_strings_only_when_asked() -> None:
    text = 'cfg "c2VjcmV0LXZhbHVlLXdpdGgtZW5vdWdoLWVudHJvcHk9PT0xMjM0NTY3OA==" now'
    assert SecretsDetector().spans(text) == []
    spans = SecretsDetector(entropy=True).spans(text)
    assert found(text, spans) == [
        ("c2VjcmV0LXZhbHVlLXdpdGgtZW5vdWdoLWVudHJvcHk9PT0xMjM0NTY3OA==", "BASE64_HIGH_ENTROPY_STRING")
    ]
    assert spans[0].score < 1.0


def test_keywords_can_be_switched_off() -> None:
    assert SecretsDetector(keywords=False).spans("password: hunter2!x") == []


async def test_check_masks_and_the_reason_names_types_not_secrets() -> None:
    registry = GuardrailRegistry()
    secrets.register(registry)
    guard = registry.create("secrets")
    assert isinstance(guard, SecretsGuardrail) and guard.cost == "fast"
    text = "keys: AKIAIOSFODNN7EXAMPLE and AKIAI44QH8DHBEXAMPLE, password: hunter2!x"
    verdict = await guard.check(text, INPUT)
    assert verdict.finding == "mask" and verdict.score == 1.0
    assert verdict.reason == "secrets: 2 AWS_ACCESS_KEY, 1 SECRET_KEYWORD"
    assert "AKIA" not in verdict.reason and "hunter2" not in verdict.reason
    assert (await guard.check("nothing to see", INPUT)).passed


async def test_checks_run_off_the_event_loop() -> None:
    guard = SecretsGuardrail()
    loop_thread = threading.get_ident()
    seen: list[int] = []
    original = guard.detector.spans

    def spans(text: str) -> list[Span]:
        seen.append(threading.get_ident())
        return original(text)

    guard.detector.spans = spans  # type: ignore[method-assign]
    verdicts = await asyncio.gather(*(guard.check("AKIAIOSFODNN7EXAMPLE", INPUT) for _ in range(4)))
    assert all(v.finding == "mask" for v in verdicts) and loop_thread not in seen


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"entropy": "yes"}, "entropy must be true or false"),
        ({"keywords": 1}, "keywords must be"),
        ({"level": 3}, "level"),
    ],
)
def test_bad_options_are_refused_by_name(options: dict[str, object], message: str) -> None:
    registry = GuardrailRegistry()
    secrets.register(registry)
    with pytest.raises(GuardrailError, match=message):
        registry.create("secrets", options)

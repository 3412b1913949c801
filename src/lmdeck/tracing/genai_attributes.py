"""The OpenTelemetry GenAI semantic-convention attributes of one request, from its trace record and answer.

lmdeck follows the GenAI conventions of OpenTelemetry semantic conventions 1.44.0 (the
``gen_ai.*`` names of ``opentelemetry-semantic-conventions`` 0.66b2, whose constants are used where
they exist)::

    attrs = request_attributes(record, body)           # gen_ai.operation.name, gen_ai.request.*, lmdeck.*
    attrs |= response_attributes(record, facts)        # gen_ai.response.*, gen_ai.usage.*

A count lmdeck does not know is absent, never 0: usage comes only from what the upstream (or the local
engine) reported.
"""

from __future__ import annotations

from typing import Any

import orjson
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes

from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.request_spans import ResponseFacts

OPERATIONS = {"chat": "chat", "completions": "text_completion", "embeddings": "embeddings"}
#: lmdeck's provider names in the convention's ``gen_ai.provider.name`` values; others are kept as they are.
PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "azure": "azure.ai.openai"}
#: The prompt's version; the conventions name ``gen_ai.prompt.name`` but no constant for the version yet.
GEN_AI_PROMPT_VERSION = "gen_ai.prompt.version"
#: ``response_format.type`` → ``gen_ai.output.type``.
OUTPUT_TYPES = {"text": "text", "json_object": "json", "json_schema": "json"}

_REQUEST_NUMBERS = (
    ("temperature", gen_ai.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", gen_ai.GEN_AI_REQUEST_TOP_P),
    ("top_k", gen_ai.GEN_AI_REQUEST_TOP_K),
    ("seed", gen_ai.GEN_AI_REQUEST_SEED),
    ("frequency_penalty", gen_ai.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", gen_ai.GEN_AI_REQUEST_PRESENCE_PENALTY),
)


def operation_name(record: TraceRecord) -> str:
    """``gen_ai.operation.name``: ``chat``, ``text_completion`` or ``embeddings``."""
    return OPERATIONS.get(record.kind, record.kind)


def provider_name(provider: str | None) -> str:
    return PROVIDERS.get(provider or "", provider or "unknown")


def request_model(record: TraceRecord, body: dict[str, Any]) -> str:
    """The model the client asked for (a route name, known or not)."""
    return record.route or str(body.get("model") or "")


def span_name(record: TraceRecord, body: dict[str, Any]) -> str:
    """``{gen_ai.operation.name} {gen_ai.request.model}``, as the conventions name a GenAI span."""
    return f"{operation_name(record)} {request_model(record, body)}".strip()


def body_of(request: Any, record: TraceRecord) -> dict[str, Any]:
    """The request body as a dict: the pipeline's model when the exporter was given it, else the record's."""
    if request is not None and hasattr(request, "model_dump"):
        dumped = request.model_dump(exclude_none=True)
        return dumped if isinstance(dumped, dict) else {}
    return record.request_body if isinstance(record.request_body, dict) else {}


def request_attributes(record: TraceRecord, body: dict[str, Any]) -> dict[str, Any]:
    """What the client asked for, and lmdeck's own ids and verdicts (``lmdeck.*``)."""
    attrs: dict[str, Any] = {
        gen_ai.GEN_AI_OPERATION_NAME: operation_name(record),
        gen_ai.GEN_AI_PROVIDER_NAME: provider_name(record.provider),
        gen_ai.GEN_AI_REQUEST_MODEL: request_model(record, body),
        "lmdeck.request_id": record.request_id,
        "lmdeck.trace_id": record.trace_id,
        "lmdeck.trace_record_id": record.id,
        "lmdeck.route": record.route or "",
        "lmdeck.target": record.target or "",
        "lmdeck.cost_usd": record.cost_usd,
        "lmdeck.retries": record.retries,
        "lmdeck.fallback_used": record.fallback_used,
        "lmdeck.cache_hit": record.cache_hit,
    }
    if record.kind != "embeddings":
        attrs[gen_ai.GEN_AI_REQUEST_STREAM] = bool(record.stream)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(max_tokens, int):
        attrs[gen_ai.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    for key, attr in _REQUEST_NUMBERS:
        if isinstance(body.get(key), int | float) and not isinstance(body.get(key), bool):
            attrs[attr] = body[key]
    stop = body.get("stop")
    if isinstance(stop, str):
        attrs[gen_ai.GEN_AI_REQUEST_STOP_SEQUENCES] = [stop]
    elif isinstance(stop, list) and stop:
        attrs[gen_ai.GEN_AI_REQUEST_STOP_SEQUENCES] = [str(s) for s in stop]
    if isinstance(body.get("n"), int) and body["n"] != 1:
        attrs[gen_ai.GEN_AI_REQUEST_CHOICE_COUNT] = body["n"]
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in OUTPUT_TYPES:
        attrs[gen_ai.GEN_AI_OUTPUT_TYPE] = OUTPUT_TYPES[response_format["type"]]
    if record.kind == "embeddings":
        attrs[gen_ai.GEN_AI_REQUEST_ENCODING_FORMATS] = [str(body.get("encoding_format") or "float")]
    if record.prompt_name:
        attrs[gen_ai.GEN_AI_PROMPT_NAME] = record.prompt_name
        if record.prompt_version is not None:
            attrs[GEN_AI_PROMPT_VERSION] = str(record.prompt_version)
    if record.session_id:
        attrs[gen_ai.GEN_AI_CONVERSATION_ID] = record.session_id
        attrs["session.id"] = record.session_id
    for name in ("client_request_id", "client_trace_id", "key_id", "team_id"):
        if value := getattr(record, name):
            attrs[f"lmdeck.{name}"] = value
    release = record.metadata.get("release")
    if release:  # stamped by the release step (lmdeck.delivery.step)
        attrs["lmdeck.release.id"] = str(release)
        attrs["lmdeck.release.variant"] = str(record.metadata.get("variant", ""))
        attrs["lmdeck.release.step"] = int(record.metadata.get("release_step", -1))
    return attrs


def usage_attributes(record: TraceRecord) -> dict[str, Any]:
    """Token counts the answer reported; absent (not 0) when it reported none."""
    attrs: dict[str, Any] = {}
    if record.input_tokens > 0:
        attrs[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] = record.input_tokens
    if record.output_tokens > 0 and record.kind != "embeddings":
        attrs[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] = record.output_tokens
    if record.cached_tokens > 0:
        attrs[gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = record.cached_tokens
    if record.cache_write_tokens > 0:
        attrs[gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = record.cache_write_tokens
    return attrs


def response_attributes(record: TraceRecord, facts: ResponseFacts | None) -> dict[str, Any]:
    """What the answer said (``gen_ai.response.*``), its usage and time to first chunk (seconds)."""
    attrs = usage_attributes(record)
    if facts is not None:
        if facts.model:
            attrs[gen_ai.GEN_AI_RESPONSE_MODEL] = facts.model
        if facts.id:
            attrs[gen_ai.GEN_AI_RESPONSE_ID] = facts.id
        if facts.finish_reasons:
            attrs[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] = [
                facts.finish_reasons[i] for i in sorted(facts.finish_reasons)
            ]
        if facts.dimensions is not None and record.kind == "embeddings":
            attrs[gen_ai.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = facts.dimensions
    if record.stream and record.ttft_ms is not None:
        attrs[gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = record.ttft_ms / 1000.0
    return attrs


def genai_attributes(record: TraceRecord) -> dict[str, Any]:
    """Every GenAI attribute the trace record alone gives (the trace-tree view of a request)."""
    body = body_of(None, record)
    facts = None
    if isinstance(record.response_body, dict) and record.status_code < 400:
        facts = ResponseFacts()
        facts.read(record.response_body)
    attrs = request_attributes(record, body) | response_attributes(record, facts)
    attrs["http.response.status_code"] = record.status_code
    if record.error_type:
        attrs[error_attributes.ERROR_TYPE] = record.error_type
    return attrs


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts = []
    for part in content or []:
        if isinstance(part, dict) and part.get("type") == "text":
            parts.append({"type": "text", "content": str(part.get("text") or "")})
        elif isinstance(part, dict):
            parts.append({"type": str(part.get("type") or "unknown")})
    return parts


def content_attributes(record: TraceRecord, body: dict[str, Any], facts: ResponseFacts | None) -> dict[str, Any]:
    """The messages, in the conventions' JSON shapes (``gen_ai.input.messages``, ``gen_ai.output.messages``,
    ``gen_ai.system_instructions``); the caller decides whether content may be exported at all."""
    attrs: dict[str, Any] = {}
    inputs: list[dict[str, Any]] = []
    system: list[dict[str, Any]] = []
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        role = str(message.get("role") or "user")
        if role in ("system", "developer"):
            system.extend(_parts(message.get("content")))
        else:
            inputs.append({"role": role, "parts": _parts(message.get("content"))})
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        inputs.append({"role": "user", "parts": _parts(prompt)})
    if inputs:
        attrs[gen_ai.GEN_AI_INPUT_MESSAGES] = orjson.dumps(inputs).decode()
    if system:
        attrs[gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS] = orjson.dumps(system).decode()
    outputs = _output_messages(record.response_body, facts)
    if outputs:
        attrs[gen_ai.GEN_AI_OUTPUT_MESSAGES] = orjson.dumps(outputs).decode()
    return attrs


def _output_messages(response: Any, facts: ResponseFacts | None) -> list[dict[str, Any]]:
    if not isinstance(response, dict):
        return []
    reason = facts.finish_reasons.get(0, "stop") if facts else "stop"
    if isinstance(response.get("content"), str):  # a stream's text, as the record step keeps it
        return [{"role": "assistant", "parts": _parts(response["content"]), "finish_reason": reason}]
    outputs = []
    for choice in response.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else choice.get("text")
        outputs.append(
            {
                "role": "assistant",
                "parts": _parts(text if isinstance(text, str) else ""),
                "finish_reason": str(choice.get("finish_reason") or reason),
            }
        )
    return outputs

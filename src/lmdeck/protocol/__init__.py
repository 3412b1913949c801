"""Wire schemas only: what goes over HTTP between lmdeck and its callers.

- the OpenAI-compatible API (``/v1``): :mod:`.chat`, :mod:`.completions`, :mod:`.embeddings`,
  :mod:`.models`, :mod:`.errors`, :mod:`.responses` (the Responses API and stored responses); these
  schemas accept unknown fields (they are passed through to upstreams) so that a new OpenAI parameter
  works before lmdeck knows its name (the Responses request refuses those it does not know, by name);
- the admin API (``/api``): :mod:`.access` (keys, teams, budgets, spend, audit, secrets),
  :mod:`.registry` (model and prompt versions, ``lmdeck apply`` declarations, request bodies),
  :mod:`.evaluation` (runs, experiments, feedback), :mod:`.traces` (the trace record); request
  bodies there reject unknown fields;
- what client and server must agree on beyond shapes: :mod:`.templates` (how a prompt version
  renders, in the :mod:`.sandbox`), :mod:`.secrets` (``{"$env": ...}`` references) and
  :mod:`.connection` (``LMDECK_BASE_URL``, ``LMDECK_API_KEY``).

The Python client (:mod:`lmdeck.sdk`) imports nothing of lmdeck but this package.
"""

from lmdeck.protocol.chat import ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, Usage
from lmdeck.protocol.completions import CompletionRequest, CompletionResponse
from lmdeck.protocol.embeddings import EmbeddingRequest, EmbeddingResponse
from lmdeck.protocol.errors import APIError, error_body
from lmdeck.protocol.models import ModelCard, ModelList

__all__ = [
    "APIError",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatCompletionResponse",
    "CompletionRequest",
    "CompletionResponse",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "ModelCard",
    "ModelList",
    "Usage",
    "error_body",
]

"""Wire schemas only: OpenAI-compatible requests, responses and errors.

Schemas accept unknown fields (they are passed through to upstreams) so that a
new OpenAI parameter works before lmdeck knows its name.
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

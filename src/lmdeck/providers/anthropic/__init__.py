"""Anthropic's Messages API behind lmdeck's OpenAI-compatible chat.

One concept per module:

- :mod:`~lmdeck.providers.anthropic.request`: parameters, translated or refused by name;
- :mod:`~lmdeck.providers.anthropic.messages`: the conversation, normalised to what the API accepts;
- :mod:`~lmdeck.providers.anthropic.content`: content parts (text, images, documents);
- :mod:`~lmdeck.providers.anthropic.response` and :mod:`~lmdeck.providers.anthropic.stream`: answers;
- :mod:`~lmdeck.providers.anthropic.errors`: HTTP and in-stream failures, refusals;
- :mod:`~lmdeck.providers.anthropic.provider`: the provider and its registration.

docs/providers.md keeps the table of every request rule and what lmdeck does about it.
"""

from lmdeck.providers.anthropic.errors import OVERLOADED, UpstreamOverloaded
from lmdeck.providers.anthropic.provider import DEFAULT_MAX_TOKENS, AnthropicProvider, register
from lmdeck.providers.anthropic.request import MessagesCall, to_messages_call, to_messages_request
from lmdeck.providers.anthropic.response import to_chat_response, to_usage
from lmdeck.providers.anthropic.stream import StreamTranslator

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "OVERLOADED",
    "AnthropicProvider",
    "MessagesCall",
    "StreamTranslator",
    "UpstreamOverloaded",
    "register",
    "to_chat_response",
    "to_messages_call",
    "to_messages_request",
    "to_usage",
]

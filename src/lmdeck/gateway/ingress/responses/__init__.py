"""OpenAI's Responses API (``/v1/responses``), served by translation into a chat request.

:mod:`.request` (Responses request → chat request), :mod:`.response` (chat completion → ``response``
object), :mod:`.stream` (chat chunks → Responses events), :mod:`.store` (stored responses, written
behind the request), :mod:`.serving` (the routes' logic). Schemas: :mod:`lmdeck.protocol.responses`.
"""

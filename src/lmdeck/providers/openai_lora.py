"""A LoRA adapter served by a vLLM upstream: the ``adapter`` options of an ``openai`` target.

vLLM picks an adapter per request by the request's ``model`` (the adapter's name). A target::

    provider: openai
    model: meta-llama/Llama-3.1-8B-Instruct
    base_url: http://vllm:8000/v1
    options:
      adapter: /adapters/support-v3       # the directory as the vLLM server sees it
      lora_name: support-v3               # optional; default lora- + 12 hex of sha256(adapter)
      adapter_loading: dynamic            # or static

``dynamic`` (the default) loads the adapter through vLLM's runtime API (``POST
{base_url}/load_lora_adapter``; vLLM started with ``--enable-lora`` and
``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``) before the first request that uses it, and again
after vLLM answers 404 for the adapter's name (it restarted and forgot it). ``static`` loads
nothing: vLLM was started with ``--lora-modules NAME=PATH``.

Errors: bad options are a :class:`~lmdeck.settings.ConfigError` at target build; a refused
load is an :class:`~lmdeck.providers.base.UpstreamError` of kind ``adapter_load_failed``
(502, not retried) whose message names the fix.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import orjson

from lmdeck.providers.base import UpstreamError
from lmdeck.providers.error_body import error_message
from lmdeck.providers.transport import Timeout, Transport
from lmdeck.settings import ConfigError, TargetConfig

AdapterLoading = Literal["dynamic", "static"]
LOADINGS: tuple[AdapterLoading, ...] = ("dynamic", "static")


def default_lora_name(path: str) -> str:
    """A stable adapter name for ``path``: ``lora-`` + the first 12 hex digits of its sha256."""
    return "lora-" + hashlib.sha256(path.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class LoraAdapter:
    """A target's adapter: its directory on the vLLM server, its name there and how it gets loaded.

    >>> LoraAdapter.of_target(TargetConfig(model="m", options={"adapter": "/a", "lora_name": "x"}))
    LoraAdapter(path='/a', name='x', loading='dynamic')
    """

    path: str
    name: str
    loading: AdapterLoading

    @classmethod
    def of_target(cls, target: TargetConfig) -> LoraAdapter | None:
        """The target's ``options.adapter``, or None; raises ConfigError naming a bad option."""
        options = target.options
        path = options.get("adapter")
        if path is None:
            for key in ("lora_name", "adapter_loading"):
                if key in options:
                    raise ConfigError(f"target {target.id}: options.{key} needs options.adapter (the adapter's path)")
            return None
        if not isinstance(path, str) or not path.strip():
            raise ConfigError(
                f"target {target.id}: options.adapter must be the path of a LoRA adapter directory "
                "as the vLLM server sees it"
            )
        name = options.get("lora_name", default_lora_name(path))
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"target {target.id}: options.lora_name must be a non-empty string")
        loading = options.get("adapter_loading", "dynamic")
        if loading not in LOADINGS:
            raise ConfigError(
                f"target {target.id}: options.adapter_loading must be one of {', '.join(LOADINGS)}, not {loading!r}"
            )
        return cls(path, name, loading)


class LoraLoader:
    """Loads one adapter into a vLLM server once, and again after the server forgot it.

    >>> loader = LoraLoader(adapter, "http://vllm:8000/v1", transport, headers, timeout)  # doctest: +SKIP
    >>> await loader.ensure()   # POST /v1/load_lora_adapter at most once until forget()  # doctest: +SKIP
    """

    def __init__(
        self,
        adapter: LoraAdapter,
        base_url: str,
        transport: Transport,
        headers: Mapping[str, str],
        timeout: Timeout,
    ) -> None:
        self.adapter = adapter
        self.url = base_url + "/load_lora_adapter"
        self.transport = transport
        self.headers = headers
        self.timeout = timeout
        self.loaded = adapter.loading == "static"
        self._lock = asyncio.Lock()

    async def ensure(self) -> None:
        """Load the adapter unless it is known loaded; concurrent callers share one load."""
        if self.loaded:
            return
        async with self._lock:
            if self.loaded:
                return
            body = orjson.dumps({"lora_name": self.adapter.name, "lora_path": self.adapter.path})
            answer = await self.transport.post(self.url, body, self.headers, self.timeout)
            text = answer.body.decode(errors="replace")
            if answer.status >= 400 and not (answer.status == 400 and "already" in text.lower()):
                raise self._refused(answer.status, text)
            self.loaded = True

    def forgotten(self, status: int, body: bytes) -> bool:
        """Whether an answer says the server does not know the adapter (vLLM restarted); forgets it if so."""
        if self.adapter.loading == "static" or status != 404:
            return False
        text = body.decode(errors="replace")
        if self.adapter.name not in text or "does not exist" not in text:
            return False
        self.loaded = False
        return True

    def _refused(self, status: int, text: str) -> UpstreamError:
        said = error_message(text.encode())[1]
        reason = said or text[:200] or "no message"
        return UpstreamError(
            502,
            f"vLLM refused to load LoRA adapter {self.adapter.name!r} from {self.adapter.path!r} "
            f"(HTTP {status}): {reason}; start vLLM with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, "
            f"or set options.adapter_loading: static and start vLLM with "
            f"--lora-modules {self.adapter.name}={self.adapter.path}",
            retryable=False,
            kind="adapter_load_failed",
        )

"""A real vLLM server behind a real ``lmdeck serve``, driven with the ``openai`` SDK (opt-in).

vLLM is not a dependency of lmdeck: it lives in its own virtual environment, named by
``LMDECK_TEST_VLLM_PYTHON``. Run with::

    LMDECK_TEST_VLLM=1 LMDECK_TEST_VLLM_PYTHON=/work/vllm-venv/bin/python \\
        .venv/bin/python -m pytest tests/integration/test_vllm_real.py

vLLM serves the bundled demo model (exported with :mod:`lmdeck.local.hf_export`) on loopback with
runtime LoRA loading on; the adapter is a random one written with PEFT from the demo model, so no
file is downloaded.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from lmdeck.local.hf_export import export_demo_model
from lmdeck.testing.servers import TEST_SETTINGS, GatewayProcess, free_port, start_gateway

VLLM_PYTHON = os.environ.get("LMDECK_TEST_VLLM_PYTHON", "")
pytestmark = pytest.mark.skipif(
    os.environ.get("LMDECK_TEST_VLLM") != "1" or not VLLM_PYTHON,
    reason="set LMDECK_TEST_VLLM=1 and LMDECK_TEST_VLLM_PYTHON (a python with vllm installed) to run",
)

#: Seconds vLLM may take to start: minutes on a loaded CPU machine (it imports torch and profiles memory).
VLLM_START_S = 900.0
LORA = "demo-a1"
#: Every request asks for greedy decoding: vLLM samples at temperature 1 when a request sends none (the
#: checkpoint's generation_config.json sets no sampling), where lmdeck's engine decodes greedily.
QUESTION: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What is 12+7?"}]
#: The demo model's greedy answer (docs/demo-model.md).
ANSWER = "2+7=9, 1+0+0=1, so 19"


@dataclass
class VllmServer:
    """A running vLLM OpenAI-compatible server."""

    proc: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lmdeck.local.demo_model import DEMO_MODEL_DIR
    from lmdeck.local.random_adapter import write_random_adapter

    return write_random_adapter(DEMO_MODEL_DIR, tmp_path_factory.mktemp("adapter") / "a1", seed=1)


@pytest.fixture(scope="module")
def vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    root = tmp_path_factory.mktemp("vllm")
    model = export_demo_model(root / "demo")
    port = free_port()
    log_path = root / "vllm.log"
    cmd = [
        VLLM_PYTHON,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--served-model-name",
        "demo",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--max-model-len",
        "512",
        "--enable-lora",
        "--max-lora-rank",
        "64",
        "--max-loras",
        "2",
    ]
    env = {
        **os.environ,
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "HF_HUB_OFFLINE": "1",
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    server = VllmServer(proc, f"http://127.0.0.1:{port}/v1", log_path)
    try:
        deadline = time.monotonic() + VLLM_START_S
        while True:
            assert proc.poll() is None, f"vLLM exited with {proc.returncode}:\n{server.log()}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"vLLM did not start in {VLLM_START_S}s:\n{server.log()}"
            time.sleep(0.5)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def gw(vllm: VllmServer, adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    base = {"provider": "openai", "model": "demo", "base_url": vllm.base_url}
    routes = [
        {"name": "vllm", "targets": [base]},
        {"name": "vllm-lora", "targets": [{**base, "options": {"adapter": str(adapter), "lora_name": LORA}}]},
    ]
    gateway = start_gateway(
        {**TEST_SETTINGS, "routes": routes}, data_dir=tmp_path_factory.mktemp("gateway"), timeout=120
    )
    try:
        yield gateway
    finally:
        gateway.stop()


def sdk(gw: GatewayProcess) -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0, timeout=300)


def vllm_models(vllm: VllmServer) -> set[str]:
    return {m["id"] for m in httpx.get(f"{vllm.base_url}/models", timeout=30).json()["data"]}


def test_chat_through_lmdeck_answers_as_the_demo_model(gw: GatewayProcess) -> None:
    reply = sdk(gw).chat.completions.create(model="vllm", messages=QUESTION, max_tokens=40, temperature=0)
    assert reply.choices[0].message.content == ANSWER
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.prompt_tokens == 16 and reply.usage.completion_tokens > 0


def test_a_streamed_chat_joins_to_the_same_answer(gw: GatewayProcess) -> None:
    chunks = list(
        sdk(gw).chat.completions.create(
            model="vllm",
            messages=QUESTION,
            max_tokens=40,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_the_adapter_is_loaded_on_first_use_and_again_after_vllm_forgets_it(
    gw: GatewayProcess, vllm: VllmServer
) -> None:
    client = sdk(gw)
    adapted = client.chat.completions.create(model="vllm-lora", messages=QUESTION, max_tokens=40, temperature=0)
    assert LORA in vllm_models(vllm)
    # The random adapter moves the demo model off its answer; the base is unchanged beside it.
    assert adapted.choices[0].message.content != ANSWER
    base = client.chat.completions.create(model="vllm", messages=QUESTION, max_tokens=40, temperature=0)
    assert base.choices[0].message.content == ANSWER
    # As after a vLLM restart: the adapter is gone, so the gateway loads it again and answers the same.
    unloaded = httpx.post(f"{vllm.base_url}/unload_lora_adapter", json={"lora_name": LORA}, timeout=60)
    assert unloaded.status_code == 200, unloaded.text
    assert LORA not in vllm_models(vllm)
    again = client.chat.completions.create(model="vllm-lora", messages=QUESTION, max_tokens=40, temperature=0)
    assert again.choices[0].message.content == adapted.choices[0].message.content
    assert LORA in vllm_models(vllm)

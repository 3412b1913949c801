"""``client.models`` and ``client.prompts`` share one pointer implementation; each sends its kind's URLs."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from lmdeck.sdk import Client
from lmdeck.sdk.pointers import PointerNamespace

#: (namespace, URL segment, pointer segment, history filter)
KINDS = [("models", "models", "aliases", "alias"), ("prompts", "prompts", "labels", "label")]


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, str], Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.sent.append(
            (request.method, request.url.raw_path.decode().partition("?")[0], dict(request.url.params), body)
        )
        return httpx.Response(200, json={"data": [{"name": "a/b"}], "changed": True})


def calls(namespace: str) -> tuple[PointerNamespace, Recorder]:
    recorder = Recorder()
    client = Client("http://lmdeck.test", api_key="sk-test", transport=httpx.MockTransport(recorder))
    found = client.namespace(namespace)
    assert isinstance(found, PointerNamespace)
    return found, recorder


@pytest.mark.parametrize(("namespace", "collection", "plural", "word"), KINDS)
def test_pointer_calls_send_the_kinds_urls(namespace: str, collection: str, plural: str, word: str) -> None:
    ns, recorder = calls(namespace)
    ns.move("a/b", "prod", 2, reason="why", expected_version=1)
    ns.remove("a/b", "prod", expected_version=2)
    ns.move_back("a/b", "prod", reason="errors")
    assert ns.moves("a/b", "prod", limit=5) == [{"name": "a/b"}]
    assert ns.list() == [{"name": "a/b"}]
    ns.register("a/b", "desc")
    base = f"/api/registry/{collection}/a%2Fb"
    assert recorder.sent == [
        ("PUT", f"{base}/{plural}/prod", {}, {"version": 2, "reason": "why", "expected_version": 1}),
        ("DELETE", f"{base}/{plural}/prod", {"expected_version": "2"}, None),
        ("POST", f"{base}/{plural}/prod/rollback", {}, {"reason": "errors", "expected_version": None}),
        ("GET", f"{base}/history", {word: "prod", "limit": "5"}, None),
        ("GET", f"/api/registry/{collection}", {}, None),
        ("POST", f"/api/registry/{collection}", {}, {"name": "a/b", "description": "desc"}),
    ]


@pytest.mark.parametrize(
    ("namespace", "move", "remove", "pointer_keyword"),
    [("models", "alias", "unalias", "alias"), ("prompts", "label", "unlabel", "label")],
)
def test_the_kinds_own_names_send_what_the_shared_calls_send(
    namespace: str, move: str, remove: str, pointer_keyword: str
) -> None:
    ns, own = calls(namespace)
    getattr(ns, move)("n", "prod", 3, reason="r")
    getattr(ns, remove)("n", "prod", expected_version=3)
    ns.rollback("n", **{pointer_keyword: "prod"}, reason="r")  # type: ignore[attr-defined]
    ns.history("n", **{pointer_keyword: "prod"}, limit=7)  # type: ignore[attr-defined]
    shared_ns, shared = calls(namespace)
    shared_ns.move("n", "prod", 3, reason="r")
    shared_ns.remove("n", "prod", expected_version=3)
    shared_ns.move_back("n", "prod", reason="r")
    shared_ns.moves("n", "prod", 7)
    assert own.sent == shared.sent

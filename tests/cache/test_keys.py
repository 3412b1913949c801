from __future__ import annotations

from lmdeck.cache.keys import cache_key, cache_scope, canonical_request, semantic_parts
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import ChatCompletionRequest


def chat(**fields: object) -> ChatCompletionRequest:
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "temperature": 0, **fields}
    return ChatCompletionRequest.model_validate(body)


def key(body: ChatCompletionRequest, *, bundle: str | None = "b1", scope: str = "team:t1", route: str = "gpt") -> str:
    return cache_key("chat", route, body, bundle, scope)


def test_scope_is_the_team_then_the_key_never_everyone_by_default() -> None:
    with_team = Principal(key_id="k1", role="inference", team_id="t1")
    without = Principal(key_id="k2", role="inference")
    assert cache_scope(with_team, "team") == "team:t1"
    assert cache_scope(without, "team") == "key:k2"
    assert cache_scope(with_team, "key") == "key:k1"
    assert cache_scope(with_team, "global") == "global"
    assert cache_scope(None, "team") == "anonymous"


def test_the_same_request_has_the_same_key_whatever_the_field_order_or_stream() -> None:
    a = ChatCompletionRequest.model_validate(
        {"model": "gpt", "temperature": 0, "messages": [{"role": "user", "content": "hi"}]}
    )
    b = chat(stream=True, stream_options={"include_usage": True}, user="u9", metadata={"x": "y"})
    assert key(a) == key(b)
    assert len(key(a)) == 64


def test_each_part_that_can_change_the_answer_changes_the_key() -> None:
    base = key(chat())
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    variants = [
        key(chat(tools=[tool])),
        key(chat(tool_choice="none")),
        key(chat(temperature=0.5)),
        key(chat(seed=3)),
        key(chat(response_format={"type": "json_object"})),
        key(chat(max_tokens=5)),
        key(chat(messages=[{"role": "user", "content": "hi!"}])),
        key(chat(unknown_param=1)),
        key(chat(), bundle="b2"),
        key(chat(), bundle=None),
        key(chat(), scope="team:t2"),
        key(chat(), route="other"),
    ]
    assert base not in variants
    assert len(set(variants)) == len(variants)


def test_canonical_request_leaves_out_what_cannot_change_the_answer() -> None:
    assert canonical_request(chat(user="u", stream=True)) == {
        "model": "gpt",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.0,
    }


def test_semantic_parts_keep_everything_but_the_user_text_in_the_shape() -> None:
    one = chat(messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}])
    two = chat(messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi, how are you"}])
    other_system = chat(messages=[{"role": "system", "content": "be long"}, {"role": "user", "content": "hello there"}])
    shape1, text1 = semantic_parts("chat", "gpt", one, "b", "team:t1")
    shape2, text2 = semantic_parts("chat", "gpt", two, "b", "team:t1")
    shape3, _ = semantic_parts("chat", "gpt", other_system, "b", "team:t1")
    assert shape1 == shape2 != shape3
    assert (text1, text2) == ("hello there", "hi, how are you")
    tooled = chat(
        messages=[{"role": "user", "content": "hello there"}],
        tools=[{"type": "function", "function": {"name": "f"}}],
    )
    assert (
        semantic_parts("chat", "gpt", tooled, "b", "team:t1")[0]
        != semantic_parts("chat", "gpt", chat(messages=[{"role": "user", "content": "hello there"}]), "b", "team:t1")[0]
    )


def test_a_route_block_overrides_only_what_it_sets() -> None:
    from lmdeck.settings import CacheConfig, CacheSettings

    settings = CacheSettings(enabled=True, ttl_s=60, scope="key")
    assert settings.for_route(None).model_dump() == CacheConfig(enabled=True, ttl_s=60, scope="key").model_dump()
    route = CacheConfig.model_validate({"allow_sampled": True, "ttl_s": 5})
    resolved = settings.for_route(route)
    assert (resolved.enabled, resolved.ttl_s, resolved.scope, resolved.allow_sampled) == (True, 5, "key", True)


def test_a_route_semantic_block_overrides_only_what_it_sets() -> None:
    from lmdeck.settings import CacheConfig, CacheSettings

    settings = CacheSettings.model_validate({"semantic": {"enabled": True, "threshold": 0.95}})
    route = CacheConfig.model_validate({"enabled": True, "semantic": {"verify_threshold": 0.97}})
    semantic = settings.for_route(route).semantic
    assert (semantic.enabled, semantic.threshold, semantic.verify_threshold) == (True, 0.95, 0.97)


def test_vary_parts_split_the_key_and_the_semantic_shape_and_none_keys_as_before() -> None:
    body = chat()
    plain = key(body)
    assert cache_key("chat", "gpt", body, "b1", "team:t1", None) == plain
    assert cache_key("chat", "gpt", body, "b1", "team:t1", {}) == plain
    strict = cache_key("chat", "gpt", body, "b1", "team:t1", {"guardrails": "d1"})
    other = cache_key("chat", "gpt", body, "b1", "team:t1", {"guardrails": "d2"})
    assert len({plain, strict, other}) == 3
    shape, text = semantic_parts("chat", "gpt", body, "b1", "team:t1")
    strict_shape, strict_text = semantic_parts("chat", "gpt", body, "b1", "team:t1", {"guardrails": "d1"})
    assert strict_text == text == "hi"
    assert strict_shape != shape
    assert semantic_parts("chat", "gpt", body, "b1", "team:t1", {}) == (shape, text)

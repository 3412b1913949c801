"""Fakes and server processes for tests, benchmarks and demos. Never a default route.

- :mod:`lmdeck.testing.fake_upstream`: a FAKE OpenAI-compatible server whose behaviour
  (latency, token rate, forced statuses, resets, hangs) is scripted at start or at run time.
- :mod:`lmdeck.testing.fake_anthropic`: a FAKE Anthropic Messages API that refuses what the real
  one refuses (:mod:`lmdeck.testing.anthropic_rules`), simulates prompt caching and scripts
  failures (statuses, ``error`` events inside a stream); in process or as a server.
- :mod:`lmdeck.testing.scripted_provider`: a FAKE in-process provider that follows a script,
  for routing and pipeline tests that need no server at all.
- :mod:`lmdeck.testing.in_process`: start a gateway app and reach it with an in-process
  HTTP client (ASGI), for tests that need no socket.
- :mod:`lmdeck.testing.servers`: start the fake upstream, the fake Anthropic API or a real ``lmdeck serve`` as
  subprocesses on free loopback ports and wait until they are ready.

Nothing here talks to a real model; answers are deterministic echoes.
"""

from lmdeck.testing.fake_behaviour import Action, FakeConfig

__all__ = ["Action", "FakeConfig"]

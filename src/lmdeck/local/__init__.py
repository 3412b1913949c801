"""The in-process inference engine and the bundled demo model.

The pieces, from the bottom up:

- ``vocab``, ``chat_template``: the demo model's tokenizer and prompt layout;
- ``model``, ``kv_cache``, ``loading``, ``quantize``: a causal LM that prefills and decodes a batch;
- ``params``, ``sampling``, ``detokenize``: what a request asks for, choosing tokens, streaming text;
- ``engine``, ``errors``: continuous batching on a thread, handing tokens back to the event loop;
- ``embeddings``: sentence embeddings, batched across concurrent requests;
- ``catalog``, ``runtime``: which models exist and the ones a gateway has loaded;
- ``skills``, ``demo_eval``, ``demo_model/``: the demo model's data, its evaluation and its checkpoint.
- ``hf_export``: the demo checkpoint as a directory other servers (vLLM) load.

The ``local`` provider (:mod:`lmdeck.providers.local`) serves all of it behind the gateway. ``params``,
``errors``, ``catalog`` and ``runtime`` import without PyTorch, which loads with the first model.
"""

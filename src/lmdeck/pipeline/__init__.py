"""The request pipeline's contract: what every feature package builds its steps against.

:mod:`~lmdeck.pipeline.context` (the request context and results), :mod:`~lmdeck.pipeline.chain`
(``Step`` and ``Pipeline``), :mod:`~lmdeck.pipeline.order` (the phases steps declare and the
one place that sorts them), :mod:`~lmdeck.pipeline.principal` and :mod:`~lmdeck.pipeline.identity`
(who is calling), :mod:`~lmdeck.pipeline.request_ids` (the ids the edge stamps on a request). It imports nothing above ``protocol``, ``tracing`` and ``settings``.
"""

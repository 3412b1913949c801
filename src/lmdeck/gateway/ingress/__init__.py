"""Public protocols other than Chat Completions, served by translation into a chat request.

Each protocol has its own package (``responses/``); :mod:`lmdeck.gateway.ingress.runner` runs the
translated chat request through the same pipeline as ``/v1/chat/completions``.
"""

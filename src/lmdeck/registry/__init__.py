"""The registry: models, prompts and datasets with immutable versions, movable aliases and labels,
their move history, and the live view the gateway serves from.

Kept light on import: ``lmdeck.settings`` and the providers never import from here.
"""

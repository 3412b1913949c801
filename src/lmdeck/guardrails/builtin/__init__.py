"""The guardrails lmdeck ships: one module per guardrail type, each registered through the ``lmdeck.guardrails`` entry points."""

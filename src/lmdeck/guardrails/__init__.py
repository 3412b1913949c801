"""Guardrails: checks on what a request sends and what its answer says (see docs/guardrails.md)."""

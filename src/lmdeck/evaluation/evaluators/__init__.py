"""The built-in evaluators, one per module, each registered through ``lmdeck.evaluators``."""

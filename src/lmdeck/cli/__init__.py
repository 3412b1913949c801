"""The ``lmdeck`` command: one module per command group."""

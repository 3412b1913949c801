"""A/B experiments in the gateway: sticky variant assignment, per-variant statistics, a verdict."""

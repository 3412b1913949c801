"""Pipeline steps owned by the gateway itself (policy steps live in :mod:`lmdeck.policy`)."""

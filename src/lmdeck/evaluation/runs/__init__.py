"""Eval runs: a dataset version through a prompt or route, scored row by row, compared and gated."""

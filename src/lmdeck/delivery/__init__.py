"""Progressive delivery: releases (spec, store, state machine, canary step, analysis, controller), shadow
traffic and feature flags."""

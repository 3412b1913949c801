"""A release's shadow stage: mirror sampled live requests to the candidate, judge the pairs, gate the canary.

- :mod:`~lmdeck.delivery.shadow.step`: the ``shadow`` pipeline step, which picks the mirrored requests
  and hands them over once the user's answer has been sent;
- :mod:`~lmdeck.delivery.shadow.mirror`: the bounded queue and the worker that calls the candidate
  (through the gateway's pipeline, as the shadow service) within the budget;
- :mod:`~lmdeck.delivery.shadow.judge`: pairwise judging, positions swapped;
- :mod:`~lmdeck.delivery.shadow.store` and :mod:`~lmdeck.delivery.shadow.evidence`: the stored pairs and
  the win/tie/loss verdict with its interval (what the release's state machine asks to leave shadow);
- :mod:`~lmdeck.delivery.shadow.runtime`: the parts wired together, started with the gateway.
"""

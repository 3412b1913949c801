"""The declared shape of guardrails: the ``guardrails:`` block of ``lmdeck.yaml`` and the per-route,
per-team and per-key attachments (what ``lmdeck apply`` files declare, too).

    guardrails:
      definitions:                          # named instances of registered guardrail types
        pii:       {type: pii, options: {entities: [EMAIL_ADDRESS, CREDIT_CARD]}}
        no-swear:  {type: regex, options: {patterns: ["\\\\bdamn\\\\b"]}}
      data_policy: {restricted: [pii], action: reroute}
      teams:  {support: {input: [{use: pii, action: mask}]}}
      keys:   {ci-bot: {output: [{use: no-swear, action: flag}]}}
    routes:
      - name: support
        guardrails: {input: [{use: pii, action: mask}], output: [{use: no-swear, action: block}]}
        targets: [{provider: openai, model: gpt-4o, data_class: external}]

These models check the shape only; whether a ``use`` names a definition and a definition's
options suit its type is checked against the registered guardrails by ``lmdeck config check``
and at start-up (:mod:`lmdeck.guardrails.config`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: ``block``: refuse (400 on input, 422 on output, an error event mid-stream); ``mask``: replace the
#: spans found with placeholders (restored in the answer); ``flag``: tag the trace only;
#: ``fallback``: send the request to the route named by ``route`` instead.
GuardAction = Literal["block", "mask", "flag", "fallback"]

#: ``sync``: the request waits for the verdict; ``async``: the check runs beside the request and may
#: only flag (for slow guardrails that must not add latency).
GuardMode = Literal["sync", "async"]

#: Where a target sends what it is given: ``external`` (a third party's API) or ``in_house``
#: (the local engine, a self-hosted server).
DataClass = Literal["external", "in_house"]


class GuardrailDefinition(BaseModel):
    """A named instance: a registered guardrail ``type`` and the keyword ``options`` its factory takes."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, description="a registered guardrail type (`lmdeck guardrails list`)")
    options: dict[str, Any] = Field(default_factory=dict, description="keyword options of the type's factory")


class GuardrailUse(BaseModel):
    """One attached guardrail: which definition, what to do on a finding, and whether the request waits.

    >>> GuardrailUse(use="pii", action="mask").mode
    'sync'
    """

    model_config = ConfigDict(extra="forbid")

    use: str = Field(min_length=1, description="the name of a `guardrails.definitions` entry")
    action: GuardAction = "block"
    route: str | None = Field(default=None, description="the route a `fallback` action sends the request to")
    mode: GuardMode = "sync"
    on_error: Literal["allow", "refuse"] | None = Field(
        default=None,
        description="when the guardrail itself fails (an error or its timeout): let the request go on unchecked, "
        "or refuse it (503); unset, a `mask` attachment or a guardrail of the data policy refuses, others allow",
    )
    timeout_s: float | None = Field(
        default=None,
        gt=0,
        le=600,
        description="seconds one check may take before it counts as the guardrail failing (default 10)",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="options overriding the definition's for this attachment only (a stricter threshold on one route)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> GuardrailUse:
        if self.action == "fallback" and not self.route:
            raise ValueError(f"guardrail {self.use!r}: action `fallback` needs `route`, the route to send to")
        if self.action != "fallback" and self.route:
            raise ValueError(f"guardrail {self.use!r}: `route` is only for action `fallback`, not {self.action!r}")
        if self.mode == "async" and self.action != "flag":
            raise ValueError(
                f"guardrail {self.use!r}: mode `async` runs beside the request and can only flag; "
                f"use action `flag` or mode `sync`, not {self.action!r}"
            )
        return self


class GuardrailAttachment(BaseModel):
    """The guardrails checking a route's (or a team's, a key's) requests and answers.

    ``stream_window`` is how many characters of a streamed answer an output guardrail sees
    at once (the text sent so far, up to this many characters back), checked before each
    chunk reaches the client.
    """

    model_config = ConfigDict(extra="forbid")

    input: list[GuardrailUse] = Field(default_factory=list, description="checked on the request's messages")
    output: list[GuardrailUse] = Field(default_factory=list, description="checked on the answer")
    stream_window: int = Field(default=256, ge=16, le=65536, description="characters of a stream checked at once")

    @model_validator(mode="after")
    def _output_actions(self) -> GuardrailAttachment:
        for use in self.output:
            if use.action == "fallback":
                raise ValueError(
                    f"output guardrail {use.use!r}: `fallback` moves a request before it is sent, so it is "
                    "an input action; use block, mask or flag on output"
                )
        return self


def _in_house_only() -> list[DataClass]:
    return ["in_house"]


class DataPolicy(BaseModel):
    """Which data may leave the house.

    A request is restricted when a guardrail named in ``restricted`` finds something in its
    input (any finding but pass), or it carries a tag in ``tags``. A restricted request may
    only go to targets whose data class is in ``allowed``; ``action`` says how: ``reroute``
    (only allowed targets serve it: the route's own, its fallbacks', else ``route``),
    ``mask`` (the findings are masked and it goes where it was going) or ``refuse`` (422).
    """

    model_config = ConfigDict(extra="forbid")

    restricted: list[str] = Field(default_factory=list, description="definition names whose findings restrict")
    tags: list[str] = Field(default_factory=list, description="request tags that restrict (customer data)")
    action: Literal["reroute", "mask", "refuse"] = "reroute"
    allowed: list[DataClass] = Field(default_factory=_in_house_only, min_length=1)
    route: str | None = Field(default=None, description="where `reroute` sends when no allowed target is on the way")


class GuardrailSettings(BaseModel):
    """The ``guardrails:`` block: definitions, the data policy, and attachments per team and key.

    ``teams`` are keyed by team id or name, ``keys`` by key id or name; their guardrails
    apply to every route the team's (key's) requests use, after the route's own.
    """

    model_config = ConfigDict(extra="forbid")

    definitions: dict[str, GuardrailDefinition] = Field(default_factory=dict)
    data_policy: DataPolicy | None = None
    teams: dict[str, GuardrailAttachment] = Field(default_factory=dict)
    keys: dict[str, GuardrailAttachment] = Field(default_factory=dict)


class GuardrailTestRequest(BaseModel):
    """``POST /api/guardrails/test``: what each configured guardrail would do with ``text``.

    ``route`` adds the action that route (with its team's and key's attachments, the
    caller's) takes on each finding; ``guardrails`` limits the run to those definitions.
    """

    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=1_000_000)
    stage: Literal["input", "output"] = "input"
    route: str | None = None
    guardrails: list[str] | None = None

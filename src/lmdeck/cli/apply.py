"""``lmdeck apply -f lmdeck.yaml``: sync routes, models, prompts, their aliases/labels, guardrail attachments
and releases.

    lmdeck apply -f lmdeck.yaml --dry-run     # print the plan only
    lmdeck apply -f lmdeck.yaml               # print the plan, then apply exactly it
    lmdeck apply -f lmdeck.yaml --prune       # also remove applied routes and aliases/labels not in the file

The file has the format of ``lmdeck.yaml`` (``routes:``, ``models:``,
``prompts:``, and ``guardrails.teams``/``guardrails.keys``; the resources of
:data:`lmdeck.cli.apply_resources.RESOURCE_KINDS`, such as ``tracing.retention.policies``
(kind ``RetentionPolicy``) and ``flags`` (kind ``Flag``), are created or updated through their own APIs after the registry
plan; other settings,
guardrail definitions and the data policy included, are ignored here). The plan is computed by the
gateway; applying sends the plan's hash back, so if the registry changed in
between nothing is applied and the new plan must be looked at first.

``releases:`` (kind Release, see docs/delivery.md) are applied after the registry: a release
that does not exist is created and started; one that exists is left as it is (a release does not
change: a new candidate is a new release), and one declared differently from the stored one is
reported.

``alerts:`` (kinds AlertRule, NotificationChannel and Silence: ``alerts.rules``, ``alerts.channels``,
``alerts.silences``; see docs/monitoring.md) are synced through ``/api/alerts/apply`` when the file
declares any; ``--prune`` then also removes rules and channels it does not declare.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer

from lmdeck.cli.apply_resources import RESOURCE_KINDS
from lmdeck.cli.connection import API_KEY, BASE_URL, connect
from lmdeck.config import ConfigFileError, read_config_file, validate_config
from lmdeck.sdk import Client, LMDeckError
from lmdeck.settings import Settings


def settings_of(path: Path) -> Settings:
    """The config file's settings (validated; read again per call, a file is small)."""
    return validate_config(read_config_file(path), path)


def declared_state(path: Path) -> dict[str, Any]:
    """The ``routes``, ``models``, ``prompts`` and teams'/keys' guardrails of a config file, validated with line
    numbers."""
    settings = validate_config(read_config_file(path), path)
    return {
        "routes": [r.model_dump(mode="json", by_alias=True, exclude_defaults=True) for r in settings.routes],
        "models": [m.model_dump(mode="json", by_alias=True, exclude_defaults=True) for m in settings.models],
        "prompts": [p.model_dump(mode="json", by_alias=True, exclude_defaults=True) for p in settings.prompts],
        "guardrails": {
            scope: {name: a.model_dump(mode="json", exclude_defaults=True) for name, a in attached.items()}
            for scope, attached in (("teams", settings.guardrails.teams), ("keys", settings.guardrails.keys))
        },
        "releases": settings.releases,
        "alerts": {
            "rules": [r.model_dump(mode="json", by_alias=True, exclude_defaults=True) for r in settings.alerts.rules],
            "channels": [
                c.model_dump(mode="json", by_alias=True, exclude_defaults=True) for c in settings.alerts.channels
            ],
            "silences": [s.model_dump(mode="json", exclude_defaults=True) for s in settings.alerts.silences],
        },
    }


def release_plan(client: Client, releases: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any] | None]]:
    """(description, the spec to create and start, or None for nothing to do) per declared release."""
    plan: list[tuple[str, dict[str, Any] | None]] = []
    for spec in releases:
        name = str(spec.get("name"))
        try:
            found = client.get(f"/api/releases/{quote(name, safe='')}")
        except LMDeckError as exc:
            if exc.status != 404:
                raise
            plan.append((f"create and start release {name} on route {spec.get('route')}", spec))
            continue
        stored = {k: v for k, v in found["spec"].items() if k in spec}
        if stored != spec:
            plan.append((f"release {name} exists ({found['state']}) with another spec: declare a new release", None))
    return plan


def apply(
    path: Path = typer.Option(Path("lmdeck.yaml"), "--file", "-f", help="the declared configuration"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show the plan, change nothing"),
    prune: bool = typer.Option(False, "--prune", help="also remove applied routes and aliases/labels not declared"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Sync routes, prompts, models and alias/label assignments to a file; a plan is shown first."""
    try:
        state = declared_state(path)
    except ConfigFileError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    releases = state.pop("releases")
    alerts = state.pop("alerts")
    with connect(base_url, api_key) as client:
        try:
            declared = settings_of(path)
            resources = [kind for kind in RESOURCE_KINDS if kind.declared(declared)]
        except ValueError as exc:
            typer.echo(f"{path}: {exc}", err=True)
            raise typer.Exit(2) from None
        pending = [(kind, kind.plan(client, declared)) for kind in resources]
        plan = client.post("/api/registry/apply", json={**state, "dry_run": True, "prune": prune})
        release_changes = release_plan(client, releases)
        alert_plan: dict[str, Any] = {"changes": []}
        if any(alerts.values()):  # (an admin call: a file without alerts does not make it, nor prunes them)
            alert_plan = client.post("/api/alerts/apply", json={**alerts, "dry_run": True, "prune": prune})
        quiet = not plan["changes"] and not release_changes and not alert_plan["changes"]
        if quiet and not any(changes for _, changes in pending):
            typer.echo("no changes")
            return
        for change in plan["changes"]:
            admin = "  (needs admin)" if change["needs_admin"] else ""
            typer.echo(f"  {change['description']}{admin}")
        for description, _ in release_changes:
            typer.echo(f"  {description}")
        for _kind, changes in pending:
            for change in changes:
                typer.echo(f"  {change.description}  (needs admin)")
        for description in alert_plan["changes"]:
            typer.echo(f"  {description}")
        if dry_run:
            extra = sum(len(changes) for _, changes in pending)
            more = f", {extra} resource change(s)" if extra else ""
            typer.echo(f"plan: {plan['summary']}{more} (dry run: nothing applied)")
            return
        if plan["changes"]:
            body = {**state, "prune": prune, "plan_hash": plan["plan_hash"]}
            result = client.post("/api/registry/apply", json=body)
            typer.echo(f"applied: {result['summary']}")
        for _, spec in release_changes:
            if spec is not None:
                client.post("/api/releases", json=spec)
                started = client.post(f"/api/releases/{quote(str(spec['name']), safe='')}/start", json={})
                typer.echo(f"release {spec['name']}: {started['state']} ({started['percent']:g}% candidate)")
        for kind, changes in pending:
            for change in changes:
                change.apply(client)
            if changes:
                typer.echo(f"applied: {len(changes)} {kind.name} change(s)")
        if alert_plan["changes"]:
            applied = client.post("/api/alerts/apply", json={**alerts, "dry_run": False, "prune": prune})
            typer.echo(f"alerts applied: {applied['summary']}")

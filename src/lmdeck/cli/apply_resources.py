"""Resources ``lmdeck apply`` syncs through their own admin APIs, after the registry's plan.

Each kind reads its declarations from the config file's settings, compares them with what the
gateway holds, and plans one :class:`ResourceChange` per resource to create or update (a
resource the file does not declare is left alone)::

    changes = RETENTION_POLICIES.plan(client, settings)   # [ResourceChange("RetentionPolicy a: create", ...)]
    for change in changes:
        change.apply(client)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lmdeck.protocol.annotation import AnnotationQueueSpec
from lmdeck.sdk.client import Client
from lmdeck.settings import Settings


@dataclass(frozen=True)
class ResourceChange:
    """One create or update: what the plan prints, and the request that carries it out."""

    description: str
    path: str
    body: dict[str, Any]

    def apply(self, client: Client) -> None:
        client.put(self.path, json=self.body)


@dataclass(frozen=True)
class ResourceKind:
    """A kind of resource: its name in plans, the declared bodies, where it is listed and stored."""

    name: str
    declared_bodies: Callable[[Settings], list[dict[str, Any]]]
    list_path: str
    item_path: str
    #: The declared fields of a listed item (the item itself, or the ``spec`` it nests them in).
    held_fields: Callable[[dict[str, Any]], dict[str, Any]] = lambda item: item

    def declared(self, settings: Settings) -> bool:
        return bool(self.declared_bodies(settings))

    def plan(self, client: Client, settings: Settings) -> list[ResourceChange]:
        """The creates and updates that make the gateway hold what ``settings`` declares."""
        current = {item["name"]: item for item in client.get(self.list_path)["data"]}
        changes = []
        for body in self.declared_bodies(settings):
            name = body["name"]
            held = current.get(name)
            if held is not None and held.get("source", "api") == "api" and _same(self.held_fields(held), body):
                continue
            verb = "create" if held is None or held.get("source") == "config" else "update"
            changes.append(ResourceChange(f"{self.name} {name}: {verb}", self.item_path.format(name=name), body))
        return changes


def _same(held: dict[str, Any], body: dict[str, Any]) -> bool:
    return all(held.get(key) == value for key, value in body.items())


RETENTION_POLICIES = ResourceKind(
    "RetentionPolicy",
    lambda settings: [p.model_dump(mode="json") for p in settings.tracing.retention.policies],
    "/api/retention/policies",
    "/api/retention/policies/{name}",
)

ANNOTATION_QUEUES = ResourceKind(
    "AnnotationQueue",
    lambda settings: [
        AnnotationQueueSpec.model_validate(q).model_dump(mode="json", exclude={"team"})
        for q in settings.evaluation.annotation_queues
    ],
    "/api/annotation-queues",
    "/api/annotation-queues/{name}",
)

FLAGS = ResourceKind(
    "Flag",
    lambda settings: [f.model_dump(mode="json") for f in settings.flags],
    "/api/flags",
    "/api/flags/{name}",
    held_fields=lambda item: dict(item["spec"]),
)

#: The kinds ``lmdeck apply`` syncs after the registry plan, in order.
RESOURCE_KINDS: list[ResourceKind] = [RETENTION_POLICIES, ANNOTATION_QUEUES, FLAGS]

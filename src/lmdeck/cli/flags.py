"""``lmdeck flags``: feature flags through the HTTP API (``/api/flags``).

lmdeck flags set support-v2 true --route support          # create (type from the value) or change its value
lmdeck flags set tone terse --default plain               # a string flag
lmdeck flags set -f flag.yaml                             # a whole spec (YAML or JSON), rules included
lmdeck flags enable support-v2 / disable support-v2
lmdeck flags kill support [--off]                         # the route's kill switch, on (or off) for everyone
lmdeck flags list / get NAME / history NAME / delete NAME
lmdeck flags evaluate --user ada --header x-beta=1        # what the flags give such a request
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer
import yaml

from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.keys import print_json, print_table, when
from lmdeck.protocol.flags import FlagValue
from lmdeck.sdk import Client, LMDeckError

app = typer.Typer(help="Feature flags: values per request, changed live, with history.", no_args_is_help=True)

HEADER = ("NAME", "TYPE", "ENABLED", "VALUE", "DEFAULT", "RULES", "ROUTES", "VERSION", "UPDATED")


def _path(name: str, suffix: str = "") -> str:
    return f"/api/flags/{quote(name, safe='')}{suffix}"


def _shown(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _row(item: dict[str, Any]) -> tuple[str, ...]:
    spec = item["spec"]
    kind = spec["type"] + (" (kill switch)" if spec["kill_switch"] else "")
    return (
        item["name"],
        kind,
        "yes" if spec["enabled"] else "no",
        _shown(spec["value"]),
        _shown(spec["default"]),
        str(len(spec["rules"])),
        ",".join(spec["routes"]) or "-",
        str(item["version"]),
        when(item["updated_at"]),
    )


def parse_value(text: str, kind: str | None) -> FlagValue:
    """A value from the command line: ``true``/``false`` and numbers by their look, unless ``kind`` says."""
    if kind == "string":
        return text
    if kind in (None, "boolean") and text.lower() in ("true", "false", "on", "off"):
        return text.lower() in ("true", "on")
    if kind in (None, "number"):
        try:
            return int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
        except ValueError:
            if kind == "number":
                raise typer.BadParameter(f"{text!r} is not a number") from None
    if kind == "boolean":
        raise typer.BadParameter(f"{text!r} is not a boolean: give true or false")
    return text


def _found(client: Client, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = client.get(_path(name))
    except LMDeckError as exc:
        if exc.status == 404:
            return None
        raise
    return found


@app.command("list")
def list_flags(as_json: bool = AS_JSON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """List flags."""
    with connect(base_url, api_key) as client:
        found = client.get("/api/flags")["data"]
    if as_json:
        print_json(found)
    else:
        print_table(HEADER, [_row(item) for item in found])


@app.command("get")
def get(name: str, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """Show a flag (JSON)."""
    with connect(base_url, api_key) as client:
        print_json(client.get(_path(name)))


@app.command("set")
def set_flag(
    name: str | None = typer.Argument(None, help="the flag (not with --file)"),
    value: str | None = typer.Argument(None, help="what it serves when enabled and no rule matches"),
    file: Path | None = typer.Option(None, "--file", "-f", help="a whole flag spec, YAML or JSON"),
    kind: str | None = typer.Option(None, "--type", help="boolean, string or number (default: from the value)"),
    default: str | None = typer.Option(None, "--default", help="what it serves when disabled"),
    route: list[str] = typer.Option([], "--route", help="a route it belongs to (repeat); their owners may change it"),
    description: str | None = typer.Option(None, "--description"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Create a flag or change its value (other fields kept), or put a whole spec from a file."""
    if file is not None:
        if name is not None or value is not None:
            raise typer.BadParameter("give NAME VALUE or --file, not both")
        spec = yaml.safe_load(file.read_text())
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise typer.BadParameter(f"{file}: expected a mapping with a `name`")
    elif name is None or value is None:
        raise typer.BadParameter("give the flag's NAME and VALUE (or --file)")
    with connect(base_url, api_key) as client:
        if file is None:
            assert name is not None and value is not None
            held = _found(client, name)
            spec = dict(held["spec"]) if held is not None else {"name": name}
            kind = kind or (spec.get("type") if held is not None else None)
            spec["value"] = parse_value(value, kind)
            spec["type"] = kind or {bool: "boolean", str: "string"}.get(type(spec["value"]), "number")
            if default is not None:
                spec["default"] = parse_value(default, spec["type"])
            elif held is not None and type(spec["default"]) is not type(spec["value"]):
                raise typer.BadParameter(f"the flag's default {spec['default']!r} is of another type: give --default")
            if route:
                spec["routes"] = sorted({*spec.get("routes", []), *route})
            if description is not None:
                spec["description"] = description
        record = client.put(_path(str(spec["name"])), json=spec)
    typer.echo(f"flag {record['name']}: version {record['version']}")


def _switch(name: str, on: bool, base_url: str | None, api_key: str | None) -> None:
    with connect(base_url, api_key) as client:
        record = client.post(_path(name, "/enable" if on else "/disable"))
    typer.echo(f"flag {name}: {'enabled' if on else 'disabled'} (version {record['version']})")


@app.command("enable")
def enable(name: str, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """Turn a flag on: its rules and value apply."""
    _switch(name, True, base_url, api_key)


@app.command("disable")
def disable(name: str, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """Turn a flag off: it serves its default."""
    _switch(name, False, base_url, api_key)


@app.command("delete")
def delete(name: str, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
    """Delete a flag (its history stays)."""
    with connect(base_url, api_key) as client:
        client.delete(_path(name))
    typer.echo(f"flag {name}: deleted")


@app.command("history")
def history(
    name: str,
    limit: int = typer.Option(20, min=1, max=1000),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """A flag's changes, newest first."""
    with connect(base_url, api_key) as client:
        entries = client.get(_path(name, "/history"), params={"limit": limit})["data"]
    if as_json:
        print_json(entries)
        return
    rows = []
    for e in entries:
        spec = e["spec"]
        state = "-" if spec is None else f"{'on' if spec['enabled'] else 'off'} value={_shown(spec['value'])}"
        rows.append((str(e["version"]), e["action"], state, e["actor"] or "-", when(e["at"])))
    print_table(("VERSION", "ACTION", "STATE", "ACTOR", "AT"), rows)


def kill_switch_name(route: str) -> str:
    """The kill switch ``lmdeck flags kill ROUTE`` uses: ``kill.ROUTE``, other characters as ``-``."""
    return "kill." + re.sub(r"[^A-Za-z0-9._:@-]", "-", route)


@app.command("kill")
def kill(
    route: str = typer.Argument(..., help="the route to switch off"),
    off: bool = typer.Option(False, "--off", help="switch the kill switch off: the route serves again"),
    flag: str | None = typer.Option(None, "--flag", help="the kill switch's name (default: kill.ROUTE)"),
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Refuse every request to ROUTE at once (503 naming the switch), or serve it again with --off."""
    name = flag or kill_switch_name(route)
    with connect(base_url, api_key) as client:
        held = _found(client, name)
        if off:
            if held is None:
                typer.echo(f"error: route {route!r} has no kill switch {name!r}", err=True)
                raise typer.Exit(1)
            record = client.post(_path(name, "/disable"))
        else:
            routes = sorted({route, *(held["spec"]["routes"] if held else [])})
            spec = {"name": name, "kill_switch": True, "routes": routes, "enabled": True, "value": True, "rules": []}
            if held is not None:
                spec["description"] = held["spec"].get("description")
            record = client.put(_path(name), json=spec)
    state = "off: the route serves" if off else "on: its requests are refused"
    typer.echo(f"kill switch {name} of route {route}: {state} (version {record['version']})")


@app.command("evaluate")
def evaluate(
    names: list[str] = typer.Argument(None, help="the flags (default: all)"),
    key_id: str | None = typer.Option(None, "--key-id"),
    team_id: str | None = typer.Option(None, "--team-id"),
    user: str | None = typer.Option(None, "--user"),
    conversation: str | None = typer.Option(None, "--conversation"),
    header: list[str] = typer.Option([], "--header", help="NAME=VALUE (repeat)"),
    as_json: bool = AS_JSON,
    base_url: str | None = BASE_URL,
    api_key: str | None = API_KEY,
) -> None:
    """What the flags give a request from this key, team, user, conversation and headers, and why."""
    headers = {}
    for item in header:
        key, sep, val = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--header {item!r}: write NAME=VALUE")
        headers[key] = val
    context = {
        "key_id": key_id,
        "team_id": team_id,
        "user": user,
        "conversation_id": conversation,
        "headers": headers,
    }
    with connect(base_url, api_key) as client:
        found = client.post("/api/flags/evaluate", json={"context": context, "flags": names or None})["data"]
    if as_json:
        print_json(found)
        return
    rows = [
        (e["name"], _shown(e["value"]), e["reason"] + (f" #{e['rule']}" if e["rule"] is not None else ""))
        for e in found
    ]
    print_table(("FLAG", "VALUE", "WHY"), rows)

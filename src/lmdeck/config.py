"""Reading ``lmdeck.yaml`` (reporting its errors with line numbers) and loading the settings.

>>> errors = check_config_text("port: nope\\n")
>>> errors[0].line, errors[0].location
(1, 'port')
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lmdeck.settings import Settings, env_overrides


@dataclass(frozen=True)
class ConfigProblem:
    line: int | None
    location: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.location}: {self.message}" if self.location else f"{where}{self.message}"


class ConfigFileError(ValueError):
    """The config file is not valid; ``problems`` holds each error with its line."""

    def __init__(self, path: Path | str, problems: list[ConfigProblem]) -> None:
        self.path = str(path)
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{self.path} is not a valid lmdeck config:\n{lines}")


def _line_index(node: yaml.Node, prefix: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out[prefix] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[(*prefix, key)] = key_node.start_mark.line + 1
            _line_index(value_node, (*prefix, key), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, (*prefix, i), out)


def _parse(text: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    lines: dict[tuple[Any, ...], int] = {}
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if node is not None:
        _line_index(node, (), lines)
    data = yaml.safe_load(text)
    return data, lines


def parse_config_text(text: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """The data of a config text and the line of each of its keys and items, by path (``("routes", 0, "name")``).

    Raises ``yaml.YAMLError`` when the text is not YAML.
    """
    return _parse(text)


def line_of(lines: Mapping[tuple[Any, ...], int], path: tuple[Any, ...]) -> int | None:
    """The line of ``path`` in a config text, or of the nearest key that holds it; None when none does."""
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


def _problems(exc: ValidationError, lines: dict[tuple[Any, ...], int]) -> list[ConfigProblem]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        line = None
        message = err["msg"]
        if loc and lines and loc[:1] not in lines:
            # Not in the file at all: an LMDECK_* variable or an option gave it, so no line of the file is to blame.
            message += " (not set in the file: an LMDECK_* environment variable or an option sets it)"
        else:
            for n in range(len(loc), -1, -1):
                if loc[:n] in lines:
                    line = lines[loc[:n]]
                    break
        problems.append(ConfigProblem(line, ".".join(str(p) for p in loc), message))
    return problems


def check_config_text(text: str) -> list[ConfigProblem]:
    """Every problem in a config text; an empty list means it is valid."""
    try:
        data, lines = _parse(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return [ConfigProblem(mark.line + 1 if mark else None, "", f"invalid YAML: {exc}")]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return [ConfigProblem(1, "", "the config must be a mapping of settings")]
    try:
        Settings.model_validate(data)
    except ValidationError as exc:
        return _problems(exc, lines)
    return []


def read_config_file(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigFileError(path, [ConfigProblem(None, "", f"cannot read: {exc.strerror}")]) from exc
    try:
        data, _ = _parse(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise ConfigFileError(path, [ConfigProblem(line, "", f"invalid YAML: {exc}")]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(path, [ConfigProblem(1, "", "the config must be a mapping of settings")])
    return data


def validate_config(data: dict[str, Any], path: Path | str) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        try:
            _, lines = _parse(Path(path).read_text())
        except (OSError, yaml.YAMLError):
            lines = {}
        raise ConfigFileError(path, _problems(exc, lines)) from exc


def config_path(explicit: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if env.get("LMDECK_CONFIG"):
        return Path(env["LMDECK_CONFIG"])
    default = Path("lmdeck.yaml")
    return default if default.exists() else None


def load_settings(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings from a YAML file (optional), the environment and explicit overrides.

    Raises :class:`ConfigFileError` with line numbers when the file is invalid, and naming the
    environment variables when there is no file and they are.
    """
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    file = config_path(path, env)
    if file is not None:
        data = read_config_file(file)
    for key, value in env_overrides(env).items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    if overrides:
        data.update(overrides)
    if file is not None:
        return validate_config(data, file)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigFileError("the environment (LMDECK_*)", _problems(exc, {})) from exc

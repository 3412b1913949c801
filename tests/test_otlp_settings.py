"""Where OTLP exports go: ``LMDECK_OTLP_ENDPOINT`` and OpenTelemetry's own exporter variables."""

from __future__ import annotations

from pathlib import Path

from lmdeck.config import load_settings


def _settings(tmp_path: Path, **environ: str):  # type: ignore[no-untyped-def]
    config = tmp_path / "lmdeck.yaml"
    config.write_text("default_routes: false\n")
    return load_settings(config, environ={"LMDECK_DATA_DIR": str(tmp_path), **environ})


def test_a_base_url_gets_the_signal_paths(tmp_path: Path) -> None:
    settings = _settings(tmp_path, LMDECK_OTLP_ENDPOINT="http://collector:4318/")
    assert settings.otlp_traces_url == "http://collector:4318/v1/traces"
    assert settings.otlp_metrics_url == "http://collector:4318/v1/metrics"


def test_a_traces_url_is_kept(tmp_path: Path) -> None:
    settings = _settings(tmp_path, LMDECK_OTLP_ENDPOINT="http://collector:4318/v1/traces")
    assert settings.otlp_traces_url == "http://collector:4318/v1/traces"
    assert settings.otlp_metrics_url == "http://collector:4318/v1/metrics"


def test_opentelemetry_variables_work_too(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT="http://otel:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://tempo:4318/v1/traces",
        OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20abc,x-scope-orgid=team-1",
    )
    assert settings.otlp_traces_url == "http://tempo:4318/v1/traces"
    assert settings.otlp_metrics_url == "http://otel:4318/v1/metrics"
    assert settings.otlp_headers == {"authorization": "Bearer abc", "x-scope-orgid": "team-1"}


def test_lmdecks_own_variable_wins_and_nothing_is_exported_without_one(tmp_path: Path) -> None:
    both = _settings(tmp_path, LMDECK_OTLP_ENDPOINT="http://a:4318", OTEL_EXPORTER_OTLP_ENDPOINT="http://b:4318")
    assert both.otlp_traces_url == "http://a:4318/v1/traces"
    neither = _settings(tmp_path)
    assert neither.otlp_traces_url is None and neither.otlp_metrics_url is None

"""The pipeline a config gives, shown without serving: nothing started, nothing of the config's touched."""

from __future__ import annotations

import threading
from pathlib import Path

from lmdeck.app.pipeline_layout import pipeline_layout
from lmdeck.settings import Settings


def test_the_layout_is_the_order_a_gateway_serves_with_each_steps_phase(tmp_path: Path) -> None:
    layout = pipeline_layout(Settings(data_dir=tmp_path / "data"))
    assert layout[:3] == [("edge", "stream_usage"), ("identify", "authenticate"), ("trace", "record")]
    assert layout[-2:] == [("meter", "cost"), ("route", "applied-routes")]
    assert [step for _, step in layout].count("prompt") == 1


def test_showing_the_layout_starts_nothing_and_touches_neither_data_dir_nor_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # Nothing listens on port 9: a connection to this database would fail the build.
    settings = Settings(
        data_dir=data_dir,
        database_url="postgresql+psycopg://lmdeck@127.0.0.1:9/lmdeck",
        otlp_endpoint="http://127.0.0.1:9",
    )
    threads = set(threading.enumerate())
    layout = pipeline_layout(settings)
    assert layout
    # No thread is started by it (another test's thread that ends meanwhile is none of its doing).
    assert not set(threading.enumerate()) - threads
    assert not data_dir.exists()
    assert settings.data_dir == data_dir and settings.database_url is not None

"""The batch runner's output files: lines appended owner-only, and what a restart finds on disk."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from lmdeck.gateway.batches.rows import RowResult, expired_line, output_line
from lmdeck.gateway.batches.runner import BatchOutputs


def test_lines_go_to_the_output_or_error_file_owner_only(tmp_path: Path) -> None:
    outputs = BatchOutputs(tmp_path / "b1")
    outputs.append([output_line("a", 200, "r1", {"ok": True}), output_line("b", 429, "r2", {"error": {}})])
    outputs.close()
    assert [json.loads(x)["custom_id"] for x in outputs.output.read_text().splitlines()] == ["a"]
    error = json.loads(outputs.errors.read_text())
    assert error["custom_id"] == "b" and error["response"]["status_code"] == 429
    assert stat.S_IMODE(os.stat(outputs.output).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "b1").st_mode) == 0o700


def test_a_restart_finds_the_rows_on_disk_and_cuts_a_torn_line(tmp_path: Path) -> None:
    outputs = BatchOutputs(tmp_path / "b2")
    outputs.append([output_line("a", 200, "r1", {}), expired_line("c")])
    outputs.close()
    with outputs.output.open("ab") as fh:
        fh.write(b'{"id": "batch_req_x", "custom_id": "torn"')  # a crash mid-write
    assert BatchOutputs(tmp_path / "b2").recovered() == {"a", "c"}
    assert outputs.output.read_bytes().endswith(b"\n")


def test_an_output_line_is_ok_only_for_a_2xx() -> None:
    assert output_line("a", 200, "r", {}).ok and not output_line("a", 400, "r", {}).ok
    assert isinstance(expired_line("a"), RowResult) and not expired_line("a").ok

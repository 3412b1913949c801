"""The README's examples run, in the order written, against a fresh ``lmdeck serve``.

Blocks preceded by ``<!-- runnable -->`` are run: bash blocks with ``bash -euo pipefail`` (the CLI on
PATH), Python blocks with this interpreter, all in one scratch directory. The placeholders a reader
replaces (the admin key, the default address) are replaced with the test gateway's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmdeck.testing.servers import gateway_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"<!-- runnable -->\n```(bash|python)\n(.*?)\n```", re.DOTALL)


def runnable_blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(text)]


def test_the_readme_marks_its_examples_runnable() -> None:
    languages = [lang for lang, _ in runnable_blocks(README.read_text())]
    assert languages.count("bash") >= 4 and languages.count("python") >= 2


def test_the_readme_examples_run_in_order(tmp_path: Path) -> None:
    blocks = runnable_blocks(README.read_text())
    work = tmp_path / "reader"
    work.mkdir()
    with gateway_process({}, data_dir=tmp_path / "gateway") as gw:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LMDECK_")}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        exports = ""
        for number, (language, code) in enumerate(blocks, 1):
            code = code.replace("<the admin key>", gw.admin_key).replace("127.0.0.1:4000", f"{gw.host}:{gw.port}")
            if language == "bash":
                # Variables exported by one block stay set for the next ones, as in a reader's shell.
                command = ["bash", "-euo", "pipefail", "-c", exports + code]
                exports += "".join(line + "\n" for line in code.splitlines() if line.startswith("export "))
            else:
                command = [sys.executable, "-c", code]
                for line in exports.splitlines():
                    for assignment in line.removeprefix("export ").split():
                        name, _, value = assignment.partition("=")
                        env[name] = value
            started = time.monotonic()
            done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300)
            print(f"README block {number} ({language}): {time.monotonic() - started:.1f} s")
            assert done.returncode == 0, (
                f"README block {number} ({language}) failed:\n{code}\n--- stdout\n{done.stdout}\n"
                f"--- stderr\n{done.stderr}\n--- gateway log\n{gw.log()}"
            )

"""A burst of 1,000 runs on the embedded default (SQLite, the server-less broker): none lost, none run twice."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.sandbox, pytest.mark.usefixtures("runtime_env")]

BURST = 1000
SCRIPT = Path(__file__).with_name("burst_embedded.py")


def test_a_burst_of_a_thousand_runs_on_the_embedded_default_loses_none_and_runs_none_twice(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "data"), str(BURST)], capture_output=True,
                         text=True, timeout=1800, cwd=SCRIPT.parents[2])
    assert out.returncode == 0, out.stderr[-3000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["finished"] == BURST
    assert figures["succeeded_first_attempt"] == BURST
    assert figures["values"] == list(range(BURST))
    assert figures["runs_with_attempts"] == BURST and figures["attempts_per_run"] == [1]
    assert figures["lines"] == BURST and figures["lines_match"]

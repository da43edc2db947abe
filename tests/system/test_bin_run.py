"""bin/run on a fresh data directory: set-up, then web, the workers and beat serving the product."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_bin_run_serves_sign_in_and_a_healthy_healthz_on_a_fresh_data_dir(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(DATA_DIR=str(tmp_path / "data"), PORT=str(port))
    log = open(tmp_path / "bin-run.log", "w+")
    process = subprocess.Popen([str(ROOT / "bin/run")], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        health = None
        while time.monotonic() < deadline:
            assert process.poll() is None, f"bin/run exited early:\n{(tmp_path / 'bin-run.log').read_text()}"
            try:
                status, body = get(f"http://127.0.0.1:{port}/healthz")
            except OSError:
                time.sleep(0.5)
                continue
            health = (status, body)
            if status == 200:
                break
            time.sleep(0.5)
        assert health and health[0] == 200, f"/healthz never became ok: {health}\n{(tmp_path / 'bin-run.log').read_text()}"
        assert json.loads(health[1])["status"] == "ok"
        status, body = get(f"http://127.0.0.1:{port}/login/")
        assert status == 200 and 'name="username"' in body

        credentials = json.loads((tmp_path / "data" / "demo-admin.json").read_text())
        # The sign-in details again once the web server answers, below the workers' start-up lines.
        deadline = time.monotonic() + 10
        while f"Functions is ready at http://127.0.0.1:{port}/" not in (tmp_path / "bin-run.log").read_text():
            assert time.monotonic() < deadline, (tmp_path / "bin-run.log").read_text()
            time.sleep(0.2)
        output = (tmp_path / "bin-run.log").read_text()
        assert output.count(credentials["password"]) == 2 and f"http://127.0.0.1:{port}/" in output
        ready = output.rindex("Functions is ready at")
        assert "worker.1 started" in output[:ready] and credentials["password"] in output[ready:]
        assert "schedules.1 started" in output[:ready] and "beat.1 started" in output[:ready]
        # Quiet by default: no Celery banner, no access log (LOG_LEVEL=DEBUG shows them).
        assert "[config]" not in output and "celery@" not in output and '"GET /login/' not in output
        assert (tmp_path / "data" / "db.sqlite3").exists()

        # A run end to end on the embedded default: operator commands, the
        # server-less broker, the worker bin/run started, the real sandbox.
        bundle = tmp_path / "hello.zip"
        with zipfile.ZipFile(bundle, "w") as archive:
            archive.writestr("main.py", "def handler(event, context):\n    print('hello', event['name'])\n    return {'greeted': event['name']}\n")
        manage = [str(ROOT / ".venv/bin/python"), "manage.py"]
        deployed = subprocess.run(
            [*manage, "deploy_function", "--org", "Demo", "hello", "--zip", str(bundle), "--handler", "main.handler",
             "--param", "name=world"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )
        assert deployed.returncode == 0, deployed.stderr
        assert json.loads(deployed.stdout)["version"] == 1
        ran = subprocess.run(
            [*manage, "run_function", "--org", "Demo", "hello", "--param", "name=operator", "--wait", "60"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=90,
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        result = json.loads(ran.stdout)
        assert result["status"] == "succeeded" and result["returnValue"] == {"greeted": "operator"}
        assert [line["message"] for line in result["logs"] if line["stream"] == "stdout"] == ["hello operator"]

        # A schedule on the embedded default: bin/run's beat drives the tick, its worker fires it.
        due = datetime.now(UTC) + timedelta(seconds=8)
        scheduled = subprocess.run(
            [*manage, "schedule_function", "--org", "Demo", "hello", "--timezone", "UTC", "--enable",
             "--entry", f"daily@{due:%H:%M:%S}", "--preview", "1"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )
        assert scheduled.returncode == 0, scheduled.stderr
        assert json.loads(scheduled.stdout)["nextRuns"] == [due.strftime("%Y-%m-%dT%H:%M:%S+00:00")]
        check = ("from functions.models import Run; "
                 "print(Run.objects.filter(trigger='schedule', status='succeeded').count())")
        deadline = time.monotonic() + 60
        fired = "0"
        while time.monotonic() < deadline and fired != "1":
            time.sleep(1)
            # The count is the last word printed (Django's shell may print a banner first).
            words = subprocess.run([*manage, "shell", "-c", check], cwd=ROOT, env=env, capture_output=True,
                                   text=True, timeout=60).stdout.split()
            fired = words[-1] if words else "0"
        assert fired == "1", "the scheduled run did not succeed on the embedded default"

        # Ctrl-C stops all three within honcho's grace period.
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    finally:
        # Like Ctrl-C: honcho stops web, worker and beat itself.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

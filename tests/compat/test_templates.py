"""The official templates run here exactly as in Samsara's simulator (samsara-fn), line by line.

Each template is generated at test time (`samsara-fn templates`), bundled
(`samsara-fn bundle`), run in the simulator (`samsara-fn init` + `samsara-fn
run manual`) and uploaded here as a Function (functions.services.function_create)
and run in the real sandbox, whose boto3 reaches the platform's real endpoint.
Both sides get the same secrets, region and Function name; stdout and stderr
are compared line by line, after the normalisations below.

What may legitimately differ, and how it is normalised (``normalise``):
  * UUIDs (correlation ids, request ids): every side makes its own -> "<uuid>".
  * The temporary storage path: the simulator's is a folder of its working
    directory, ours is /tmp in the sandbox -> "<temp>/".
  * The bucket name: the simulator's is "samsara-functions-simulator-storage-
    name-<run id>", ours "samsara-functions-storage-<org id>" -> "<bucket>".
  * "__pycache__" in the code directory: the simulator imports the bundle in
    its own process, which writes bytecode next to the code; a read-only code
    package (Lambda's /var/task, our sandbox's) has none -> dropped from the
    simulator's directory listings.
  * LastModified: the simulator prints an ISO string of the file's mtime,
    real boto3 parses S3's timestamp into a datetime -> "<timestamp>".
  * ETag: the simulator's is "<size>_<mtime>", S3's (and ours) a quoted MD5
    of the content (checked here) -> "<etag>".
  * Body: both print a StreamingBody object with its memory address -> "<body>".
  * ResponseMetadata: the simulator gives RequestId and HTTPStatusCode; real
    boto3 adds HostId, HTTPHeaders and RetryAttempts. Only HTTPStatusCode is
    compared (it must match: 200, and 204 for DeleteObject).
  * Fields the simulator's mock does not model are dropped from our side
    (real S3 answers also carry AcceptRanges, Metadata, StorageClass,
    ChecksumCRC32, ChecksumType...): every field the simulator prints must be
    present on our side with an equal value, except three that real boto3
    leaves out when S3 does not send them: NextContinuationToken when it is
    None (not truncated), Contents when it is [] (no <Contents> element) and
    DeleteMarker when it is False (unversioned bucket).
"""

import ast
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from accounts.models import Organization
from functions.models import RunStatus
from functions.run_services import run_trigger
from functions.services import function_create
from logs.models import LogEntry
from runtime import services
from secrets_vault.services import secret_set
from storage.models import StoredObject

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.usefixtures("runtime_env")]

SAMSARA_FN = Path(sys.executable).with_name("samsara-fn")
TEMPLATES = ["just-secrets", "persistent-storage", "temporary-runtime-storage", "access-bundle-content",
             "resolve-samsara-region", "correlation-logging"]
SECRETS = {"API_KEY": "key-7f3a9c", "OTHER_SECRET": "other-51d2e8"}
REGIONS = {"us": "us-west-2", "eu": "eu-west-1", "ca": "ca-central-1"}
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ASSIGNMENT_RE = re.compile(r"^(?P<name>[\w.]+(?:\([^=]*\))?)=(?P<value>.*)$")
DATETIME_RE = re.compile(r"datetime\.datetime\([^()]*(?:\([^()]*\))?[^()]*\)")
OBJECT_RE = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>")
ABSENT_WHEN = {"NextContinuationToken": None, "Contents": [], "DeleteMarker": False}


def samsara_fn(*args, cwd, env=None):
    result = subprocess.run([str(SAMSARA_FN), *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                            env=env or dict(os.environ))
    assert result.returncode == 0, f"samsara-fn {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result



@pytest.fixture(scope="session")
def bundles(tmp_path_factory):
    """{template: its zip}, generated and bundled by samsara-fn from PyPI (never copied into the project)."""
    root = tmp_path_factory.mktemp("templates")
    zips = {}
    for name in TEMPLATES:
        samsara_fn("templates", name, str(root / name), cwd=root)
        samsara_fn("bundle", str(root / name), str(root / "zips"), cwd=root)
        zips[name] = root / "zips" / f"{name}.zip"
        assert zips[name].is_file()
    return zips


class Simulator:
    """One Function initialised in samsara-fn's simulator, in a working directory of its own."""

    def __init__(self, workdir, name, bundle, *, secrets=None, region="us-west-2", params=None):
        self.workdir, self.name = workdir, name
        self.env = {"PATH": os.environ.get("PATH", ""), "HOME": str(workdir), "AWS_DEFAULT_REGION": region,
                    "AWS_EC2_METADATA_DISABLED": "true", "NO_COLOR": "1"}
        args = ["init", name, "--zipFile", str(bundle), "--handler", "function.main"]
        if secrets is not None:
            secrets_file = workdir / ".secrets.json"
            secrets_file.write_text(json.dumps(secrets))
            args += ["--secrets", str(secrets_file)]
        if params:
            params_file = workdir / "parameters.json"
            params_file.write_text(json.dumps(params))
            args += ["--parameters", str(params_file)]
        samsara_fn(*args, cwd=workdir, env=self.env)

    @property
    def temp_path(self):
        return str(self.workdir / ".samsara-functions" / "functions" / self.name / "temp")

    def run(self):
        result = samsara_fn("run", "manual", self.name, cwd=self.workdir, env=self.env)
        return result.stdout.splitlines(), result.stderr.splitlines()

    @property
    def storage(self):
        return self.workdir / ".samsara-functions" / "storage"

    def stored_keys(self):
        return sorted(str(p.relative_to(self.storage)) for p in self.storage.rglob("*") if p.is_file())

    def stored_bytes(self, key):
        return (self.storage / key).read_bytes()


class Platform:
    """The same bundle uploaded here as a Function and run in the real sandbox."""

    def __init__(self, organization, name, bundle, *, secrets=None, params=None):
        with open(bundle, "rb") as package:
            self.function = function_create(organization=organization, actor=None, actor_label="compat test",
                                            name=name, handler="function.main", bundle=package,
                                            event_parameters=list((params or {}).items()))
        for key, value in (secrets or {}).items():
            secret_set(function=self.function, name=key, value=value, actor=None)
        self.temp_path = "/tmp"

    def run(self, capture):
        run = run_trigger(function=self.function, trigger="manual")
        with capture(execute=False):
            services.run_execute(run_id=run.pk)
        run.refresh_from_db()
        assert run.status == RunStatus.SUCCEEDED, (run.reason, run.error)
        entries = LogEntry.objects.filter(run=run).order_by("id")
        return ([e.message for e in entries if e.stream == "stdout"],
                [e.message for e in entries if e.stream == "stderr"])


# --- normalisation ------------------------------------------------------------------------------


def _value(text):
    text = DATETIME_RE.sub("'<timestamp>'", text)
    text = OBJECT_RE.sub("'<body>'", text)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None


def _tree(value, ours):
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "ResponseMetadata":
                out[key] = {"HTTPStatusCode": item["HTTPStatusCode"]}
            elif key == "LastModified":
                out[key] = "<timestamp>"
            elif key == "ETag":
                if ours:
                    assert re.fullmatch(r'"[0-9a-f]{32}"', item), f"not a quoted MD5: {item!r}"
                out[key] = "<etag>"
            elif key == "Body":
                out[key] = "<body>"
            else:
                out[key] = _tree(item, ours)
        return out
    if isinstance(value, list):
        return [_tree(item, ours) for item in value if ours or item != "__pycache__"]
    return value


def _project(ours, reference):
    """Our value seen through the fields the simulator models (see the module docstring)."""
    if isinstance(ours, dict) and isinstance(reference, dict):
        projected = {}
        for key, expected in reference.items():
            if key in ours:
                projected[key] = _project(ours[key], expected)
            elif key in ABSENT_WHEN and expected == ABSENT_WHEN[key]:
                projected[key] = expected
            else:
                projected[key] = "<missing on the platform>"
        return projected
    if isinstance(ours, list) and isinstance(reference, list) and len(ours) == len(reference):
        return [_project(o, r) for o, r in zip(ours, reference)]
    return ours


def normalise(lines, *, temp_path, bucket, ours, reference=None):
    """Lines with the legitimate differences replaced; ``reference`` (the simulator's, normalised) to project onto."""
    out = []
    for index, line in enumerate(lines):
        line = line.replace(temp_path.rstrip("/") + "/", "<temp>/")
        if bucket:
            line = line.replace(bucket, "<bucket>")
        line = UUID_RE.sub("<uuid>", line)
        match = ASSIGNMENT_RE.match(line)
        value = _value(match["value"]) if match else None
        if match and value is not None:
            tree = _tree(value, ours)
            if ours and reference is not None and index < len(reference) and isinstance(reference[index], tuple):
                tree = _project(tree, reference[index][1])
            out.append((match["name"], tree))
        else:
            out.append(line)
    return out


def compare(simulated, platform, *, simulator, ours, bucket_sim, bucket_ours):
    """Assert that stdout and stderr match line by line after normalisation."""
    for stream, sim_lines, our_lines in (("stdout", simulated[0], platform[0]), ("stderr", simulated[1], platform[1])):
        expected = normalise(sim_lines, temp_path=simulator.temp_path, bucket=bucket_sim, ours=False)
        actual = normalise(our_lines, temp_path=ours.temp_path, bucket=bucket_ours, ours=True, reference=expected)
        assert actual == expected, f"{stream} differs:\nsimulator: {sim_lines}\nplatform:  {our_lines}"


def sim_bucket(simulated):
    for line in simulated[0]:
        found = re.search(r"'Name': '([^']+)'", line)
        if found:
            return found[1]
    return None


# --- the templates ------------------------------------------------------------------------------


def check_template(name, bundles, organization, tmp_path, capture, *, secrets=None, region="us-west-2", runs=1,
                   params=None):
    simulator = Simulator(tmp_path, name, bundles[name], secrets=secrets, region=region, params=params)
    ours = Platform(organization, name, bundles[name], secrets=secrets, params=params)
    bucket = f"samsara-functions-storage-{organization.id}"
    for _ in range(runs):
        simulated, platform = simulator.run(), ours.run(capture)
        assert simulated[0], "the simulator printed nothing"
        compare(simulated, platform, simulator=simulator, ours=ours, bucket_sim=sim_bucket(simulated), bucket_ours=bucket)
    return simulator, ours


# (template, the organization's region, run options): persistent-storage runs three times, so its files
# accumulate and are deleted as in the simulator; resolve-samsara-region runs in every region.
CASES = [
    pytest.param("just-secrets", "us", {"secrets": SECRETS}, id="just-secrets"),
    pytest.param("persistent-storage", "us", {"runs": 3}, id="persistent-storage-three-runs"),
    pytest.param("temporary-runtime-storage", "us", {}, id="temporary-runtime-storage"),
    pytest.param("access-bundle-content", "us", {}, id="access-bundle-content"),
    *[pytest.param("resolve-samsara-region", region, {}, id=f"resolve-samsara-region-{region}") for region in REGIONS],
    pytest.param("correlation-logging", "us", {}, id="correlation-logging"),
    # SamsaraFunction* event parameters are the Function's own (CONTRACT.md): JSON lines at DEBUG, as simulated.
    pytest.param("correlation-logging", "us",
                 {"params": {"SamsaraFunctionLoggerIsJsonOut": "true", "SamsaraFunctionLoggerLevel": "DEBUG"}},
                 id="correlation-logging-with-the-logger-parameters-samsaras-example-sets"),
]


@pytest.mark.parametrize("template, region, options", CASES)
def test_a_template_prints_and_stores_what_the_simulator_does(
        bundles, db, tmp_path, django_capture_on_commit_callbacks, template, region, options):
    organization = Organization.objects.create(name=f"Fleet {region}", region=region, timezone="UTC")
    simulator, ours = check_template(template, bundles, organization, tmp_path, django_capture_on_commit_callbacks,
                                     region=REGIONS[region], **options)
    # The files left in storage are the simulator's, with the same bytes, written by the Function.
    stored = list(StoredObject.objects.filter(organization=organization).order_by("key"))
    assert [o.key for o in stored] == simulator.stored_keys()
    assert all(o.written_by_function == ours.function for o in stored)
    assert {o.key: o.etag for o in stored} == {key: hashlib.md5(simulator.stored_bytes(key)).hexdigest()
                                               for key in simulator.stored_keys()}

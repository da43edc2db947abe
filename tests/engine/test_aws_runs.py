"""Functions reach secrets and storage from inside the real sandbox, with boto3 and the samsara SDK, unchanged."""

import hashlib
import json

import pytest

from accounts.models import Organization
from logs.models import LogEntry
from secrets_vault.services import secret_set
from storage.models import StoredObject, WriterKind
from tests.factories import make_function


ROLE_CREDENTIALS = """
import os, boto3

def role():
    answer = boto3.client("sts").assume_role(RoleArn=os.environ["SamsaraFunctionExecRoleArn"],
                                             RoleSessionName=os.environ["SamsaraFunctionName"])["Credentials"]
    return {"aws_access_key_id": answer["AccessKeyId"], "aws_secret_access_key": answer["SecretAccessKey"],
            "aws_session_token": answer["SessionToken"]}
"""


def fn(organization, name, code):
    return make_function(organization, name, files={"main.py": code, "awshelp.py": ROLE_CREDENTIALS})


def test_the_samsara_sdk_loads_the_functions_secrets(org, run_value):
    # samsara-api 14.10.0 (the pinned runtime's) has the helper in samsara.function, not at the top level.
    # The run's return value is redacted like its logs, so the Function returns digests of the values.
    function = fn(org, "sdk", "import hashlib\nfrom samsara.function import Function\n\n"
                              "def handler(event, context):\n"
                              "    secrets = Function().secrets().load()\n"
                              "    return {k: hashlib.sha256(v.encode()).hexdigest() for k, v in secrets.items()}\n")

    def digest(value):
        return hashlib.sha256(value.encode()).hexdigest()

    assert run_value(function) == {}
    secret_set(function=function, name="API_TOKEN", value="tok-1", actor=None)
    secret_set(function=function, name="REGION", value="eu", actor=None)
    assert run_value(function) == {"API_TOKEN": digest("tok-1"), "REGION": digest("eu")}
    # Changed in the dashboard: the next run sees it.
    secret_set(function=function, name="API_TOKEN", value="tok-2", actor=None)
    assert run_value(function)["API_TOKEN"] == digest("tok-2")


def test_the_function_gets_endpoint_urls_config_and_its_own_credentials(org, run_value):
    function = fn(org, "env", """
import os
def handler(event, context):
    keys = ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE",
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]
    env = {k: os.environ.get(k) for k in keys}
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    seen_in_cmdlines = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    if secret.encode() in handle.read():
                        seen_in_cmdlines.append(pid)
            except OSError:
                pass
    return {"env": env, "config": open(os.environ["AWS_CONFIG_FILE"]).read(), "run_aws": os.listdir("/run/aws"),
            "run": os.listdir("/run"), "in_cmdlines": seen_in_cmdlines}
""")
    first, second = run_value(function), run_value(function)
    env = first["env"]
    assert env["AWS_ENDPOINT_URL_STS"] == env["AWS_ENDPOINT_URL_SSM"] == env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:9000"
    assert env["AWS_CONFIG_FILE"] == "/opt/aws/config" and "addressing_style = path" in first["config"]
    assert env["AWS_ACCESS_KEY_ID"].startswith("ASIA") and len(env["AWS_SECRET_ACCESS_KEY"]) == 40
    assert env["AWS_SESSION_TOKEN"]
    # Only the attempt's own socket (a warm environment names each attempt's afresh).
    assert len(first["run_aws"]) == 1 and first["run_aws"][0].endswith(".sock") and first["run"] == ["aws"]
    assert first["in_cmdlines"] == []  # not on bwrap's command line (nor anyone else's)
    # Every attempt has its own.
    assert second["env"]["AWS_ACCESS_KEY_ID"] != env["AWS_ACCESS_KEY_ID"]


def test_the_base_credentials_are_never_logged(org, run_value):
    function = fn(org, "quiet", "import os\ndef handler(event, context):\n    return os.environ['AWS_SECRET_ACCESS_KEY']\n")
    secret = run_value(function)
    assert not LogEntry.objects.filter(message__contains=secret).exists()


def test_storage_writes_show_the_function_as_writer(org, run_value, admin_client):
    function = fn(org, "writer", """
import os, boto3
from awshelp import role
def handler(event, context):
    s3 = boto3.client("s3", **role())
    bucket = os.environ["SamsaraFunctionStorageName"]
    s3.put_object(Bucket=bucket, Key="reports/out.json", Body=b'{"ok": true}')
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="reports/")["Contents"]]
""")
    assert run_value(function) == ["reports/out.json"]
    stored = StoredObject.objects.get(organization=org, key="reports/out.json")
    assert stored.writer_kind == WriterKind.FUNCTION and stored.written_by_function == function
    page = admin_client.get(f"/o/{org.id}/settings/developer/functions/storage/?prefix=reports/")
    assert page.status_code == 200 and "out.json" in page.content.decode() and "writer" in page.content.decode()


@pytest.mark.parametrize("region, aws_region", [("eu", "eu-west-1"), ("ca", "ca-central-1")])
@pytest.mark.slow
def test_organizations_in_other_regions_sign_for_their_region(db, run_value, region, aws_region):
    organization = Organization.objects.create(name=f"Fleet {region}", region=region, timezone="UTC")
    function = fn(organization, "regional", """
import os, boto3
from awshelp import role
def handler(event, context):
    ssm = boto3.client("ssm", **role())
    value = ssm.get_parameter(Name=os.environ["SamsaraFunctionSecretsPath"], WithDecryption=True)["Parameter"]["Value"]
    return [os.environ["AWS_REGION"], value, ssm.meta.region_name]
""")
    secret_set(function=function, name="K", value="v", actor=None)
    assert run_value(function) == [aws_region, '{"K": "v"}', aws_region]


def test_credentials_of_an_ended_attempt_are_refused_in_the_next(org, run_value):
    function = fn(org, "replay", """
import os, boto3, botocore
from awshelp import role
def handler(event, context):
    mine = role()
    old = event.get("old")
    if not old:
        return {"base": {"aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
                         "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
                         "aws_session_token": os.environ["AWS_SESSION_TOKEN"]}, "role": mine}
    import json
    old = json.loads(old)
    outcome = {}
    try:
        boto3.client("s3", **old["role"]).list_objects_v2(Bucket=os.environ["SamsaraFunctionStorageName"])
        outcome["s3"] = "allowed"
    except botocore.exceptions.ClientError as error:
        outcome["s3"] = error.response["Error"]["Code"]
    try:
        boto3.client("sts", **old["base"]).assume_role(RoleArn=os.environ["SamsaraFunctionExecRoleArn"], RoleSessionName="x1")
        outcome["sts"] = "allowed"
    except botocore.exceptions.ClientError as error:
        outcome["sts"] = error.response["Error"]["Code"]
    return outcome
""")
    leaked = run_value(function)
    assert run_value(function, overrides={"old": json.dumps(leaked)}) == {"s3": "ExpiredToken", "sts": "ExpiredToken"}


def test_process_mode_relays_on_a_free_port(org, run_value, settings):
    settings.FUNCTIONS_SANDBOX = "process"
    function = fn(org, "proc", """
import os, boto3
from awshelp import role
def handler(event, context):
    s3 = boto3.client("s3", **role())
    s3.put_object(Bucket=os.environ["SamsaraFunctionStorageName"], Key="p.txt", Body=b"process")
    return os.environ["AWS_ENDPOINT_URL_S3"]
""")
    url = run_value(function)
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":9000")
    assert StoredObject.objects.filter(organization=org, key="p.txt").exists()


def test_a_function_that_never_uses_aws_is_unaffected(org, run_value):
    function = fn(org, "plain", "def handler(event, context):\n    return 'fine'\n")
    assert run_value(function) == "fine"


def test_inside_the_sandbox_forged_foreign_and_escaping_requests_are_refused(org, other_org, run_value):
    function = fn(org, "prober", """
import os, boto3, botocore
from awshelp import role
def code(call):
    try:
        call()
        return "allowed"
    except botocore.exceptions.ClientError as error:
        return [error.response["Error"]["Code"], error.response["ResponseMetadata"]["HTTPStatusCode"]]
def handler(event, context):
    mine = role()
    s3 = boto3.client("s3", **mine)
    forged = boto3.client("s3", **dict(mine, aws_secret_access_key="f" * 40))
    bucket = os.environ["SamsaraFunctionStorageName"]
    return {
        "forged": code(lambda: forged.put_object(Bucket=bucket, Key="x", Body=b"x")),
        "other_org": code(lambda: s3.get_object(Bucket=event["other"], Key="theirs.txt")),
        "traversal": code(lambda: s3.put_object(Bucket=bucket, Key="../../etc/passwd", Body=b"x")),
        "other_role": code(lambda: boto3.client("sts").assume_role(
            RoleArn=os.environ["SamsaraFunctionExecRoleArn"].replace("/prober", "/someone"), RoleSessionName="s1")),
        "other_secrets": code(lambda: boto3.client("ssm", **mine).get_parameter(
            Name=os.environ["SamsaraFunctionSecretsPath"].replace("/prober/", "/someone/"))),
    }
""")
    from storage import services as storage

    storage.object_put(organization=other_org, key="theirs.txt", fileobj_or_bytes=b"private")
    outcome = run_value(function, overrides={"other": f"samsara-functions-storage-{other_org.id}"})
    assert outcome == {"forged": ["SignatureDoesNotMatch", 403], "other_org": ["AccessDenied", 403],
                       "traversal": ["InvalidArgument", 400], "other_role": ["AccessDenied", 403],
                       "other_secrets": ["AccessDeniedException", 400]}
    assert not StoredObject.objects.filter(organization=org).exists()


def test_a_secret_changed_after_the_claim_is_still_masked_in_what_the_function_prints(org, run_to_end, monkeypatch):
    """The worker reads the secrets for masking when it claims the run; a value an admin sets between the
    claim and the Function's GetParameter reaches the Function, and is masked all the same."""
    from functions.run_services import run_trigger
    from runtime import services
    from secrets_vault.redaction import Redactor

    function = fn(org, "late", "from samsara.function import Function\n\n"
                               "def handler(event, context):\n"
                               "    token = Function().secrets().load()['API_TOKEN']\n"
                               "    print('token is', token)\n"
                               "    return token\n")
    secret_set(function=function, name="API_TOKEN", value="set-after-the-claim-9f2c", actor=None)
    # As if the claim had read the secrets just before the admin's change: it knew only the old value.
    monkeypatch.setattr(services, "redactor_for", lambda function: Redactor(["the-old-value-1b7e"]).redact)
    run = run_to_end(run_trigger(function=function, trigger="manual"), limit=1)
    assert run.status == "succeeded", run.reason
    printed = list(LogEntry.objects.filter(run=run, stream="stdout").values_list("message", flat=True))
    assert printed == ["token is ****"]
    assert json.loads(run.return_value) == "****"

"""Runs through the engine land in their Function version's warm execution environment (runtime/warm.py),
and reach secrets and storage there with fresh credentials each time."""

import json

from accounts.models import Organization
from secrets_vault.services import secret_set
from tests.factories import make_function


# The zygote is the handler's parent (pid 2 in the namespace; a cold bootstrap's parent is bwrap's
# init, pid 1); its start time tells environments apart.
CODE = """
import os, boto3

def where():
    with open(f"/proc/{os.getppid()}/stat") as handle:
        return [os.getppid(), handle.read().rpartition(")")[2].split()[19]]

def handler(event, context):
    out = {"where": where(), "key": os.environ["AWS_ACCESS_KEY_ID"]}
    if event.get("aws"):
        answer = boto3.client("sts").assume_role(RoleArn=os.environ["SamsaraFunctionExecRoleArn"],
                                                 RoleSessionName=os.environ["SamsaraFunctionName"])["Credentials"]
        role = {"aws_access_key_id": answer["AccessKeyId"], "aws_secret_access_key": answer["SecretAccessKey"],
                "aws_session_token": answer["SessionToken"]}
        ssm = boto3.client("ssm", **role)
        out["secrets"] = ssm.get_parameter(Name=os.environ["SamsaraFunctionSecretsPath"],
                                           WithDecryption=True)["Parameter"]["Value"]
        s3 = boto3.client("s3", **role)
        bucket = os.environ["SamsaraFunctionStorageName"]
        s3.put_object(Bucket=bucket, Key=f"runs/{context.aws_request_id}.txt", Body=context.aws_request_id.encode())
        out["objects"] = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="runs/")["Contents"])
    return out
"""



def test_consecutive_runs_share_the_environment_and_reach_aws_with_their_own_credentials(org, run_value):
    function = make_function(org, "warm-aws", files={"main.py": CODE})
    secret_set(function=function, name="TOKEN", value="t-1", actor=None)
    first = run_value(function, overrides={"aws": "1"})
    second = run_value(function, overrides={"aws": "1"})
    assert first["where"][0] == 2 and first["where"] == second["where"]
    assert first["key"] != second["key"]
    assert json.loads(first["secrets"]) == json.loads(second["secrets"]) == {"TOKEN": "t-1"}
    assert len(first["objects"]) == 1 and len(second["objects"]) == 2


def test_functions_of_other_organizations_never_share_an_environment(org, run_value):
    other = Organization.objects.create(name="Other fleet", region="us", timezone="UTC")
    mine = make_function(org, "same-code", files={"main.py": CODE})
    theirs = make_function(other, "same-code", files={"main.py": CODE})
    where_mine = run_value(mine)["where"]
    where_theirs = run_value(theirs)["where"]
    assert where_mine[0] == where_theirs[0] == 2
    assert where_mine != where_theirs
    assert run_value(mine)["where"] == where_mine


def test_runs_are_cold_when_warm_environments_are_off(org, run_value, settings):
    settings.FUNCTIONS_WARM_ENVIRONMENTS = False
    function = make_function(org, "cold-only", files={"main.py": CODE})
    assert run_value(function)["where"][0] == 1


def _wait_until_ready(pool, timeout=30.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with pool.lock:
            if not any(env.busy for env in pool.envs.values()):
                return
        time.sleep(0.02)
    raise AssertionError("pre-started environments did not get ready")


def test_after_a_worker_start_and_after_a_deploy_the_next_run_finds_its_environment_started(org, run_value, users):
    import io

    from functions.services import code_version_upload
    from runtime import services
    from tests.factories import make_zip

    function = make_function(org, "prestarted", files={"main.py": CODE})
    first = run_value(function)
    pool = services._warm_pool()
    pool.clear()  # as a worker starting afresh has none
    assert services.warm_environments_prestart() == 1
    assert services.warm_environments_prestart() == 0  # already there (or starting)
    _wait_until_ready(pool)
    prestarted = next(env for env in pool.envs.values() if env.key[0][1] == function.pk)
    second = run_value(function)
    assert pool.last_environment is prestarted and prestarted.runs == 1
    assert second["where"][0] == 2 and second["where"] != first["where"]
    assert second["key"] != first["key"]

    # A new version deployed: its environment is started before its first run.
    upload = make_zip({"main.py": CODE.replace("out = {", "out = {'version': 2, ")})
    code_version_upload(function=function, actor=users["full_admin"], bundle=io.BytesIO(upload))
    function.refresh_from_db()
    assert services.warm_environments_prestart() == 1
    _wait_until_ready(pool)
    new = next(env for env in pool.envs.values() if env.key[0] == (org.pk, function.pk, function.deployed_version.sha256))
    third = run_value(function)
    assert third["version"] == 2 and pool.last_environment is new and new.runs == 1

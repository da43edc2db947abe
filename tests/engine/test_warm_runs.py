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

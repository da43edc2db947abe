"""Test harness (no tests here): one attempt's real AWS endpoint, in-process, for boto3 in the test to talk to.

The endpoint is the worker's (runtime/aws, real backend, real database and
storage); bootstrap's own TCP->Unix relay runs in a subprocess, as it does in
the sandbox. The test's main thread serves the attempt's database thread
(AttemptChannel) while the boto3 calls run in another thread, as the
endpoint's handler threads do during a run.
"""

import subprocess
import sys
import threading
from pathlib import Path

import boto3
from botocore.config import Config

from functions.run_services import run_trigger
from runtime import services
from runtime.aws.endpoint import attempt_endpoint
from tests.factories import make_function

PROJECT = Path(__file__).resolve().parents[2]
RELAY = (
    "import socket, sys\n"
    "from runtime.bootstrap import _relay\n"
    "listener = socket.socket()\n"
    "listener.bind(('127.0.0.1', 0))\n"
    "listener.listen(128)\n"
    "print(listener.getsockname()[1], flush=True)\n"
    "_relay(listener, sys.argv[1])\n"
)


class Attempt:
    def __init__(self, organization, name, timeout_s=60):
        function = make_function(organization, name, files={"main.py": "def handler(e, c):\n    return 1\n"})
        run = run_trigger(function=function, trigger="manual")
        self.run, self.attempt = services.run_claim(run_id=run.pk)
        self.function = self.run.function
        self.channel = services.AttemptChannel(self.run, self.attempt, lambda text: text)
        self.env = services.attempt_environment(self.run)
        self._endpoint = attempt_endpoint(run=self.run, channel=self.channel, env=self.env, timeout_s=timeout_s)
        self.access = self._endpoint.__enter__()
        self.base = {
            "aws_access_key_id": self.access.credentials["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": self.access.credentials["AWS_SECRET_ACCESS_KEY"],
            "aws_session_token": self.access.credentials["AWS_SESSION_TOKEN"],
        }
        self.relay = subprocess.Popen([sys.executable, "-c", RELAY, str(self.access.socket_path)], cwd=PROJECT,
                                      stdout=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{int(self.relay.stdout.readline())}"
        self.closed = False

    @property
    def bucket(self):
        return self.env["SamsaraFunctionStorageName"]

    def client(self, service, credentials=None, region=None, **config):
        config.setdefault("retries", {"max_attempts": 1})
        if service == "s3":  # as the sandbox's AWS config file says
            config.setdefault("s3", {"addressing_style": "path"})
            config.setdefault("signature_version", "s3v4")
        return boto3.client(service, endpoint_url=self.url, region_name=region or self.env["AWS_REGION"],
                            config=Config(**config), **(credentials or self.base))

    def do(self, work):
        """work() in another thread while this one serves the attempt's database calls; its result or error."""
        outcome = {}

        def target():
            try:
                outcome["value"] = work()
            except BaseException as error:  # re-raised in the test's thread
                outcome["error"] = error
            finally:
                self.channel.close()

        thread = threading.Thread(target=target)
        thread.start()
        self.channel.serve_until_closed()
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def assume_role(self, credentials=None, **extra):
        sts = self.client("sts", credentials)
        return sts.assume_role(RoleArn=self.env["SamsaraFunctionExecRoleArn"], RoleSessionName="fn", **extra)

    def role(self):
        """Role credentials as client keyword arguments."""
        answer = self.do(self.assume_role)["Credentials"]
        return {"aws_access_key_id": answer["AccessKeyId"], "aws_secret_access_key": answer["SecretAccessKey"],
                "aws_session_token": answer["SessionToken"]}

    def close(self):
        if self.closed:
            return
        self.closed = True
        self._endpoint.__exit__(None, None, None)
        self.relay.kill()
        self.relay.wait()
        self.relay.stdout.close()

"""The in-run AWS-compatible endpoint (STS, SSM, S3) that each attempt's Function reaches with boto3.

Pure-Python parts (no Django): sigv4.py, credentials.py, errors.py, server.py,
sts.py, ssm.py, s3.py. The worker's side: backend.py (secrets and storage
through the attempt's database thread) and endpoint.py (one endpoint per
attempt, wired into the sandbox).
"""

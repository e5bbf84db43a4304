"""The local scratch store: SeaweedFS with STS, as the clouds have it.

The scratch-credentials service (scratch_credentials.py, a hub service here as in the chart) is the only
holder of a role that may write the bucket. It assumes that role with a web identity token, exactly as on
EKS with IRSA: AssumeRoleWithWebIdentity at SeaweedFS's STS (its S3 port), trusted because the token is
signed by the stack's stand-in for the Kubernetes service-account issuer (token_issuer.py). SeaweedFS then
enforces each user's session policy. No user has static keys; only an admin identity exists, for the
bucket's set-up and for tests that inspect the store.

Standard library only.
"""

import base64
import hashlib
import urllib.parse

ADMIN = "pangeo-local-admin"
ADMIN_ACCESS_KEY = "LOCALADMIN"
ROLE_ARN = "arn:aws:iam::000000000000:role/pangeo-scratch"
PROVIDER = "local-service-accounts"
# The audience EKS projects into IRSA tokens.
AUDIENCE = "sts.amazonaws.com"
# SeaweedFS stores a TTL as a count (at most 255) of one unit; days read best (the facts are in days),
# then finer units for test values, then coarser ones for very long TTLs.
_TTL_UNITS = (("d", 1440), ("h", 60), ("m", 1), ("w", 10080), ("M", 43200), ("y", 525600))


def bucket_and_prefix(scratch_url):
    """('pangeo-scratch', 'alice') from 's3://pangeo-scratch/alice'."""
    parts = urllib.parse.urlsplit(scratch_url)
    return parts.netloc, parts.path.strip("/")


def identities(admin_secret):
    """SeaweedFS's -s3.config: the admin only (bucket set-up, inspection by tests)."""
    return {"identities": [{"name": ADMIN, "credentials": [{"accessKey": ADMIN_ACCESS_KEY, "secretKey": admin_secret}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}


def iam_config(bucket, issuer_url, sts_secret, service_subject):
    """SeaweedFS's -s3.iam.config: its STS, the issuer it trusts, and the one role the service may assume."""
    signing_key = base64.b64encode(hashlib.sha256(sts_secret.encode()).digest()).decode()
    return {
        "sts": {"tokenDuration": "1h", "maxSessionLength": "12h", "issuer": "pangeo-local-sts",
                "signingKey": signing_key},
        "providers": [{"name": PROVIDER, "type": "oidc", "enabled": True,
                       "config": {"issuer": issuer_url, "clientId": AUDIENCE, "jwksUri": f"{issuer_url}/keys"}}],
        "policy": {"defaultEffect": "Deny"},
        "roles": [{
            "roleName": "pangeo-scratch", "roleArn": ROLE_ARN, "attachedPolicies": ["pangeo-scratch-bucket"],
            "trustPolicy": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Federated": PROVIDER}, "Action": ["sts:AssumeRoleWithWebIdentity"],
                "Condition": {"StringEquals": {"oidc:sub": service_subject}}}]},
        }],
        "policies": [{"name": "pangeo-scratch-bucket", "document": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:*"], "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]},
            {"Effect": "Allow", "Action": ["sts:ValidateSession"], "Resource": ["*"]},
        ]}}],
    }


def ttl_spec(days):
    """SeaweedFS's TTL text for `days` (may be a fraction, for tests), e.g. '7d', '12h', '1m'."""
    minutes = round(days * 1440)
    if minutes < 1:
        raise ValueError(f"scratch.expire_after_days={days}: SeaweedFS's shortest TTL is one minute")
    for unit, size in _TTL_UNITS:
        if minutes % size == 0 and minutes // size <= 255:
            return f"{minutes // size}{unit}"
    raise ValueError(f"scratch.expire_after_days={days}: no SeaweedFS TTL expresses it (at most 255 of one unit)")


def setup_commands(bucket, ttl):
    """`weed shell` commands: make the bucket and let every object in it expire after `ttl`."""
    return [f"s3.bucket.create -name {bucket}",
            f"fs.configure -locationPrefix=/buckets/{bucket}/ -ttl={ttl} -apply"]

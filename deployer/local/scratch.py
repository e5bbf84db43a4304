"""The local scratch store: SeaweedFS with one S3 identity per stand-in user, limited to the user's prefix.

Standard library only: the hub and the gateway processes import it to hand each user their keys.
Keys are derived (HMAC) from a secret kept in the data directory, so nothing is stored per user and
nothing is committed.
"""

import hashlib
import hmac
import json
import urllib.parse

ADMIN = "pangeo-local-admin"
# SeaweedFS stores a TTL as a count (at most 255) of one unit; days read best (the facts are in days),
# then finer units for test values, then coarser ones for very long TTLs.
_TTL_UNITS = (("d", 1440), ("h", 60), ("m", 1), ("w", 10080), ("M", 43200), ("y", 525600))


def bucket_and_prefix(scratch_url):
    """('pangeo-scratch', 'alice') from 's3://pangeo-scratch/alice'."""
    parts = urllib.parse.urlsplit(scratch_url)
    return parts.netloc, parts.path.strip("/")


def user_keys(secret, username):
    """(access key id, secret access key) of `username`, the same on every call and restart."""
    digest = hmac.new(secret.encode(), f"s3:{username}".encode(), hashlib.sha256).hexdigest()
    return "LOCAL" + digest[:15].upper(), digest[15:55]


def user_environment(secret, username):
    access, secret_key = user_keys(secret, username)
    return {"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret_key}


def identities(secret, admin_secret, user_prefixes):
    """SeaweedFS's -s3.config: an admin (setup, inspection) and, per user, Read/Write/List on their prefix.

    user_prefixes: {username: (bucket, prefix)}.
    """
    result = [{"name": ADMIN, "credentials": [{"accessKey": "LOCALADMIN", "secretKey": admin_secret}],
               "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]
    for username, (bucket, prefix) in sorted(user_prefixes.items()):
        access, secret_key = user_keys(secret, username)
        result.append({"name": f"user-{username}", "credentials": [{"accessKey": access, "secretKey": secret_key}],
                       "actions": [f"{action}:{bucket}/{prefix}/*" for action in ("Read", "Write", "List")]})
    return {"identities": result}


def write_identities(path, config):
    path.write_text(json.dumps(config, indent=1))
    path.chmod(0o600)


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

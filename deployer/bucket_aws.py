"""The scratch bucket on AWS: the S3 lifecycle rule, and the IRSA role of the scratch-credentials service.

The role (scratch.identity.aws_role_arn) trusts the EKS cluster's OIDC provider for exactly the services'
ServiceAccounts (`system:serviceaccount:<namespace>:<scratch.service_account>` of every cluster file naming
the role), and its inline policy may use the scratch buckets of those files; the service narrows it per
user with a session policy. The OIDC provider of an EKS cluster is created once by an operator.
"""

import json
import shlex
import urllib.parse

from botocore.exceptions import BotoCoreError, ClientError

from .bucket import BucketError, Item
from .values import namespace

LIFECYCLE_RULE_ID = "pangeo-scratch-expiry"
ROLE_POLICY_NAME = "pangeo-scratch-bucket"
OBJECT_ACTIONS = ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:ListMultipartUploadParts",
                  "s3:PutObject"]
BUCKET_ACTIONS = ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"]
DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")


def bucket_name(cluster):
    return cluster["scratch"]["bucket"].removeprefix("s3://")


def eks_cluster(cluster):
    """(region, account, name) of the EKS cluster its kubernetes.context names (an EKS cluster ARN)."""
    parts = cluster["kubernetes"]["context"].split(":")
    if len(parts) != 6 or parts[:3] != ["arn", "aws", "eks"] or not parts[5].startswith("cluster/"):
        raise BucketError("kubernetes.context", "an EKS cluster ARN (arn:aws:eks:<region>:<account>:cluster/<name>) "
                          "is needed to find the cluster's OIDC provider for IRSA")
    return parts[3], parts[4], parts[5].removeprefix("cluster/")


def clients(cluster):
    import boto3

    region = eks_cluster(cluster)[0]
    session = boto3.Session(region_name=region)
    return {"s3": session.client("s3", endpoint_url=cluster["scratch"].get("endpoint_url")),
            "iam": session.client("iam"), "eks": session.client("eks")}


def lifecycle(days):
    """One rule over the whole bucket: objects, and uploads never completed, go after `days` days."""
    return {"Rules": [{"ID": LIFECYCLE_RULE_ID, "Filter": {"Prefix": ""}, "Status": "Enabled",
                       "Expiration": {"Days": days}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days}}]}


def role_policy(buckets):
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "ScratchObjects", "Effect": "Allow", "Action": OBJECT_ACTIONS,
         "Resource": [f"arn:aws:s3:::{b}/*" for b in buckets]},
        {"Sid": "ScratchBuckets", "Effect": "Allow", "Action": BUCKET_ACTIONS,
         "Resource": [f"arn:aws:s3:::{b}" for b in buckets]},
    ]}


def trust_policy(providers):
    """providers: {(provider ARN, issuer host/path): [ServiceAccount subjects]}."""
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Federated": arn}, "Action": "sts:AssumeRoleWithWebIdentity",
         "Condition": {"StringEquals": {f"{issuer}:aud": "sts.amazonaws.com", f"{issuer}:sub": sorted(subjects)}}}
        for (arn, issuer), subjects in sorted(providers.items())
    ]}


def canonical(value):
    """Policies and rules compared as AWS means them: a one-element list is its element, order is not kept."""
    if isinstance(value, str) and value.startswith("%7B"):
        value = json.loads(urllib.parse.unquote(value))
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        items = sorted((canonical(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
        return items[0] if len(items) == 1 else items
    return value


def _whole_bucket_filter(rule):
    """S3 writes "the whole bucket" several ways (no filter, an empty one, an empty prefix): one of them."""
    rule = dict(rule)
    legacy_prefix = rule.pop("Prefix", None)
    if rule.get("Filter") in (None, {}, {"Prefix": ""}) and not legacy_prefix:
        rule["Filter"] = {"Prefix": ""}
    elif legacy_prefix:
        rule["Filter"] = {"Prefix": legacy_prefix}
    return rule


def _code(error):
    return error.response.get("Error", {}).get("Code", "") if isinstance(error, ClientError) else ""


def _call(key, what, call, **kwargs):
    try:
        return call(**kwargs)
    except ClientError as e:
        raise BucketError(key, f"{what}: {_code(e)}: {e.response.get('Error', {}).get('Message', e)}") from None
    except BotoCoreError as e:
        raise BucketError(key, f"{what}: {e}") from None


def plan(cluster, peers, clients):
    return plan_lifecycle(cluster, clients["s3"]) + plan_iam(cluster, peers, clients["iam"], clients["eks"])


def plan_lifecycle(cluster, s3):
    bucket, days = bucket_name(cluster), cluster["scratch"]["expire_after_days"]
    desired = lifecycle(days)
    try:
        current = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except ClientError as e:
        if _code(e) == "NoSuchLifecycleConfiguration":
            current = []
        elif _code(e) == "NoSuchBucket":
            raise BucketError("scratch.bucket", f"s3://{bucket} does not exist; an operator creates it once "
                              "(README: Scratch bucket and identity)") from None
        else:
            raise BucketError("scratch.expire_after_days", f"cannot read the lifecycle of s3://{bucket}: "
                              f"{_code(e)}: {e.response.get('Error', {}).get('Message', e)}") from None
    except BotoCoreError as e:
        raise BucketError("scratch.bucket", f"cannot reach s3://{bucket}: {e}") from None
    if canonical([_whole_bucket_filter(r) for r in current]) == canonical(desired["Rules"]):
        return []
    now = ", ".join(r.get("ID", "?") for r in current) or "none"
    what = f"s3://{bucket}: lifecycle: every object expires after {days} days (rules now: {now})"
    how = (f"aws s3api put-bucket-lifecycle-configuration --bucket {bucket} "
           f"--lifecycle-configuration {shlex.quote(json.dumps(desired))}")
    if cluster["scratch"]["bucket_management"]["lifecycle"] != "deploy":
        return [Item(what, None, how)]
    return [Item(what, lambda: _call("scratch.expire_after_days", f"setting the lifecycle of s3://{bucket}",
                                     s3.put_bucket_lifecycle_configuration, Bucket=bucket,
                                     LifecycleConfiguration=desired), how)]


def _providers(peers, eks):
    providers, issuers = {}, {}
    for peer in peers:
        _, account, name = eks_cluster(peer)
        if name not in issuers:  # production and staging share one EKS cluster: asked once
            reply = _call("kubernetes.context", f"describing EKS cluster {name}", eks.describe_cluster, name=name)
            issuers[name] = reply["cluster"]["identity"]["oidc"]["issuer"].removeprefix("https://")
        issuer = issuers[name]
        arn = f"arn:aws:iam::{account}:oidc-provider/{issuer}"
        subject = f"system:serviceaccount:{namespace(peer)}:{peer['scratch']['service_account']}"
        providers.setdefault((arn, issuer), set()).add(subject)
    return providers


def _read(iam, key, call, **kwargs):
    """The IAM resource, or None where it does not exist; 'denied' where the deploy identity may not read it."""
    try:
        return call(**kwargs)
    except ClientError as e:
        if _code(e) == "NoSuchEntity":
            return None
        if _code(e) in DENIED:
            return "denied"
        raise BucketError(key, f"{_code(e)}: {e.response.get('Error', {}).get('Message', e)}") from None
    except BotoCoreError as e:
        raise BucketError(key, str(e)) from None


def plan_iam(cluster, peers, iam, eks):
    arn = cluster["scratch"]["identity"]["aws_role_arn"]
    path_and_name = arn.split(":role", 1)[1]
    role, path = path_and_name.rsplit("/", 1)[1], path_and_name.rsplit("/", 1)[0] + "/"
    managed = cluster["scratch"]["bucket_management"]["iam"] == "deploy"
    key = "scratch.identity.aws_role_arn"
    providers = _providers(peers, eks)
    trust = trust_policy(providers)
    policy = role_policy(sorted({bucket_name(p) for p in peers}))
    items = []

    for provider_arn, issuer in sorted(providers):
        found = _read(iam, key, iam.get_open_id_connect_provider, OpenIDConnectProviderArn=provider_arn)
        if found is None or found == "denied":
            region, _, name = eks_cluster(cluster)
            # Creating it takes the issuer's certificate thumbprint: eksctl does that, once per EKS cluster.
            items.append(Item(f"IAM OIDC provider {issuer} (IRSA of EKS cluster {name})"
                              + (" is missing" if found is None else " could not be read by the deploy identity"),
                              None, f"eksctl utils associate-iam-oidc-provider --cluster {name} "
                                    f"--region {region} --approve"))

    current = _read(iam, key, iam.get_role, RoleName=role)
    if current == "denied" and managed:
        raise BucketError("scratch.bucket_management.iam", f"the deploy identity may not read IAM role {role}; "
                          "grant it iam:GetRole, iam:CreateRole, iam:UpdateAssumeRolePolicy, iam:GetRolePolicy, "
                          "iam:PutRolePolicy on the role, or set iam: operator")
    role_policy_now = None
    if isinstance(current, dict):
        role_policy_now = _read(iam, key, iam.get_role_policy, RoleName=role, PolicyName=ROLE_POLICY_NAME)
        if role_policy_now == "denied" and managed:
            raise BucketError("scratch.bucket_management.iam", f"the deploy identity may not read the policies "
                              f"of IAM role {role}; grant it iam:GetRolePolicy and iam:PutRolePolicy, or set iam: operator")

    def item(what, call, how, **kwargs):
        apply = (lambda: _call(key, what, call, **kwargs)) if managed else None
        return Item(what, apply, how)

    trust_json, policy_json = json.dumps(trust), json.dumps(policy)
    if current is None or current == "denied":
        state = "is missing" if current is None else "could not be read by the deploy identity"
        items.append(item(f"IAM role {role} {state}: create it, trusting "
                          + ", ".join(sorted(s for subjects in providers.values() for s in subjects)),
                          iam.create_role, f"aws iam create-role --role-name {role} --path {path} "
                          f"--assume-role-policy-document {shlex.quote(trust_json)}",
                          RoleName=role, Path=path, AssumeRolePolicyDocument=trust_json,
                          Description="Pangeo scratch-credentials service: per-user scratch credentials"))
    elif canonical(current["Role"]["AssumeRolePolicyDocument"]) != canonical(trust):
        items.append(item(f"IAM role {role}: trust exactly "
                          + ", ".join(sorted(s for subjects in providers.values() for s in subjects)),
                          iam.update_assume_role_policy, f"aws iam update-assume-role-policy --role-name {role} "
                          f"--policy-document {shlex.quote(trust_json)}",
                          RoleName=role, PolicyDocument=trust_json))
    if (role_policy_now is None or role_policy_now == "denied"
            or canonical(role_policy_now["PolicyDocument"]) != canonical(policy)):
        items.append(item(f"IAM role {role}: inline policy {ROLE_POLICY_NAME} on "
                          + ", ".join(f"s3://{b}" for b in sorted({bucket_name(p) for p in peers})),
                          iam.put_role_policy, f"aws iam put-role-policy --role-name {role} --policy-name "
                          f"{ROLE_POLICY_NAME} --policy-document {shlex.quote(policy_json)}",
                          RoleName=role, PolicyName=ROLE_POLICY_NAME, PolicyDocument=policy_json))
    return items

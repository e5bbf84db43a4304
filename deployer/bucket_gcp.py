"""The scratch bucket on GCP: the GCS lifecycle rule, and the Google service account of the scratch-credentials
service, through Google's JSON APIs with google-auth's AuthorizedSession (the deploy's own login).

The service account (scratch.identity.gcp_service_account) exists, is Workload Identity for exactly the
services' Kubernetes ServiceAccounts (`<project>.svc.id.goog[<namespace>/<scratch.service_account>]` of every
cluster file naming it), and is objectAdmin of the bucket; the service downscopes it per user.
"""

import json
import shlex

from .bucket import BucketError, Item
from .values import namespace

IAM_API = "https://iam.googleapis.com/v1"
STORAGE_API = "https://storage.googleapis.com/storage/v1"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
WORKLOAD_IDENTITY_ROLE = "roles/iam.workloadIdentityUser"
BUCKET_ROLE = "roles/storage.objectAdmin"
TIMEOUT_S = 30


def clients(cluster):
    import google.auth
    import google.auth.exceptions
    from google.auth.transport.requests import AuthorizedSession

    try:
        credentials, _ = google.auth.default(scopes=SCOPES)
    except google.auth.exceptions.DefaultCredentialsError as e:
        raise BucketError("scratch.bucket", f"no Google credentials to manage {cluster['scratch']['bucket']} "
                          f"with (CI logs in by OIDC; an operator runs `gcloud auth application-default login`): {e}")
    return AuthorizedSession(credentials)


def bucket_name(cluster):
    return cluster["scratch"]["bucket"].removeprefix("gs://")


def gke_project(cluster):
    """The project of the GKE cluster its kubernetes.context names (gcloud's gke_<project>_<location>_<name>)."""
    parts = cluster["kubernetes"]["context"].split("_")
    if len(parts) != 4 or parts[0] != "gke":
        raise BucketError("kubernetes.context", "a gcloud GKE context (gke_<project>_<location>_<name>) is needed "
                          "to name the cluster's Workload Identity pool")
    return parts[1]


def lifecycle(days):
    """Objects, and uploads never completed, go after `days` days (GCS counts age from creation, as S3)."""
    return {"rule": [{"action": {"type": "Delete"}, "condition": {"age": days}},
                     {"action": {"type": "AbortIncompleteMultipartUpload"}, "condition": {"age": days}}]}


def workload_identity_members(peers):
    return sorted(f"serviceAccount:{gke_project(p)}.svc.id.goog[{namespace(p)}/{p['scratch']['service_account']}]"
                  for p in peers)


def _request(http, key, what, method, url, body=None, missing_ok=False, denied_ok=False):
    """JSON of the reply; None for 404 where `missing_ok`, 'denied' for 403 where `denied_ok`."""
    try:
        reply = http.request(method, url, json=body, timeout=TIMEOUT_S)
    except Exception as e:  # transport and auth errors of requests / google-auth: all stop the step alike
        raise BucketError(key, f"{what}: {type(e).__name__}: {e}") from None
    if reply.status_code == 404 and missing_ok:
        return None
    if reply.status_code == 403 and denied_ok:
        return "denied"
    if reply.status_code >= 400:
        try:
            message = reply.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = reply.text[:200]
        raise BucketError(key, f"{what}: HTTP {reply.status_code}: {message}")
    return reply.json() if reply.content else {}


def plan(cluster, peers, http):
    return plan_lifecycle(cluster, http) + plan_iam(cluster, peers, http)


def _sorted_rules(rules):
    return sorted(rules, key=lambda r: json.dumps(r, sort_keys=True))


def plan_lifecycle(cluster, http):
    bucket, days = bucket_name(cluster), cluster["scratch"]["expire_after_days"]
    url = f"{STORAGE_API}/b/{bucket}?fields=lifecycle"
    current = _request(http, "scratch.expire_after_days", f"reading the lifecycle of gs://{bucket}", "GET", url,
                       missing_ok=True)
    if current is None:
        raise BucketError("scratch.bucket", f"gs://{bucket} does not exist; an operator creates it once "
                          "(README: Scratch bucket and identity)")
    desired = lifecycle(days)
    if _sorted_rules(current.get("lifecycle", {}).get("rule", [])) == _sorted_rules(desired["rule"]):
        return []
    what = f"gs://{bucket}: lifecycle: every object expires after {days} days"
    how = f"gcloud storage buckets update gs://{bucket} --lifecycle-file=<a file holding {json.dumps(desired)}>"
    if cluster["scratch"]["bucket_management"]["lifecycle"] != "deploy":
        return [Item(what, None, how)]
    return [Item(what, lambda: _request(http, "scratch.expire_after_days", f"setting the lifecycle of gs://{bucket}",
                                        "PATCH", url, {"lifecycle": desired}), how)]


def plan_iam(cluster, peers, http):
    email = cluster["scratch"]["identity"]["gcp_service_account"]
    account_id, project = email.split("@")[0], email.split("@")[1].split(".")[0]
    bucket = bucket_name(cluster)
    managed = cluster["scratch"]["bucket_management"]["iam"] == "deploy"
    key = "scratch.identity.gcp_service_account"
    members = workload_identity_members(peers)
    account_url = f"{IAM_API}/projects/{project}/serviceAccounts/{email}"
    bucket_iam_url = f"{STORAGE_API}/b/{bucket}/iam"

    def read(what, method, url):
        found = _request(http, key, what, method, url, missing_ok=True, denied_ok=True)
        if found == "denied" and managed:
            raise BucketError("scratch.bucket_management.iam", f"the deploy identity may not {what}; grant it "
                              "roles/iam.serviceAccountAdmin on the account and roles/storage.admin on the bucket, "
                              "or set iam: operator")
        return found

    def item(what, how, apply):
        return Item(what, apply if managed else None, how)

    account = read(f"read service account {email}", "GET", account_url)
    items = []
    if not isinstance(account, dict):
        body = {"accountId": account_id, "serviceAccount": {
            "displayName": "Pangeo scratch credentials", "description": "Hands each user credentials for their "
            "own scratch prefix (the scratch-credentials service)"}}
        items.append(item(f"service account {email} " + ("is missing: create it" if account is None else
                                                         "could not be read by the deploy identity"),
                          f"gcloud iam service-accounts create {account_id} --project {project}",
                          lambda: _request(http, key, f"creating {email}", "POST",
                                           f"{IAM_API}/projects/{project}/serviceAccounts", body)))

    bindings_url = f"{account_url}:getIamPolicy"
    policy = read(f"read the IAM policy of {email}", "POST", bindings_url) if isinstance(account, dict) else None
    bound = next((b["members"] for b in (policy if isinstance(policy, dict) else {}).get("bindings", [])
                  if b["role"] == WORKLOAD_IDENTITY_ROLE and "condition" not in b), [])
    if sorted(bound) != members:

        def bind():
            # read again: the etag guards against a change made since the plan
            now = _request(http, key, f"reading the IAM policy of {email}", "POST", bindings_url)
            others = [b for b in now.get("bindings", []) if b["role"] != WORKLOAD_IDENTITY_ROLE or "condition" in b]
            now["bindings"] = others + [{"role": WORKLOAD_IDENTITY_ROLE, "members": members}]
            _request(http, key, f"binding Workload Identity to {email}", "POST", f"{account_url}:setIamPolicy",
                     {"policy": now})

        how = "; ".join(f"gcloud iam service-accounts add-iam-policy-binding {email} --role {WORKLOAD_IDENTITY_ROLE} "
                        f"--member {shlex.quote(m)}" for m in members)
        items.append(item(f"service account {email}: Workload Identity for exactly {', '.join(members)}", how, bind))

    bucket_policy = read(f"read the IAM policy of gs://{bucket}", "GET", bucket_iam_url)
    holders = [m for b in (bucket_policy if isinstance(bucket_policy, dict) else {}).get("bindings", [])
               if b["role"] == BUCKET_ROLE and "condition" not in b for m in b["members"]]
    member = f"serviceAccount:{email}"
    if member not in holders:

        def grant():
            now = _request(http, key, f"reading the IAM policy of gs://{bucket}", "GET", bucket_iam_url)
            binding = next((b for b in now.setdefault("bindings", [])
                            if b["role"] == BUCKET_ROLE and "condition" not in b), None)
            if binding is None:
                now["bindings"].append({"role": BUCKET_ROLE, "members": [member]})
            elif member not in binding["members"]:
                binding["members"].append(member)
            _request(http, key, f"granting {BUCKET_ROLE} on gs://{bucket} to {email}", "PUT", bucket_iam_url, now)

        items.append(item(f"gs://{bucket}: {BUCKET_ROLE} for {email}",
                          f"gcloud storage buckets add-iam-policy-binding gs://{bucket} --role {BUCKET_ROLE} "
                          f"--member {member}", grant))
    return items

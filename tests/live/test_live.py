"""What only a deployed hub shows, beside the smoke suite (`make health` runs both): HTTPS as the public
sees it, and the Dask Gateway reachable through the hub's proxy."""

import urllib.parse

import pytest
import requests

pytestmark = pytest.mark.live

TIMEOUT = 30


def _https_only(target):
    if "https_contact_email" not in target.facts["hub"]:
        pytest.skip(f"{target.facts['name']} is served over plain HTTP (no https_contact_email)")


def test_the_certificate_is_valid_for_the_host(live_target):
    _https_only(live_target)
    host = live_target.facts["hub"]["host"]
    # requests verifies the chain and the host name against the system's CAs
    reply = requests.get(f"https://{host}/hub/health", timeout=TIMEOUT)
    assert reply.status_code == 200


def test_plain_http_is_redirected_to_https(live_target):
    _https_only(live_target)
    host = live_target.facts["hub"]["host"]
    reply = requests.get(f"http://{host}/hub/health", timeout=TIMEOUT, allow_redirects=False)
    assert reply.status_code in (301, 302, 307, 308)
    location = urllib.parse.urlsplit(reply.headers["Location"])
    assert (location.scheme, location.hostname) == ("https", host)


def test_the_gateway_is_healthy_behind_the_proxy(live_target):
    reply = requests.get(f"{live_target.hub_url}/services/dask-gateway/api/health", timeout=TIMEOUT)
    assert reply.status_code == 200, reply.text[:300]
    assert reply.json()["status"] == "pass"


def test_the_hub_knows_the_gateway_service(live_target):
    reply = requests.get(f"{live_target.hub_url}/hub/api/services", timeout=TIMEOUT,
                         headers={"Authorization": f"token {live_target.api_token}"})
    assert reply.status_code == 200, reply.text[:300]
    assert "dask-gateway" in reply.json()

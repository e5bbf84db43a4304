"""JupyterHub's REST API as the smoke suite uses it: users, tokens, spawns with their progress events."""

import json
import re
import threading
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser

import requests

from .kernel import Kernel

TIMEOUT = 30
SPAWN_TIMEOUT = 300


class HubAPI:
    def __init__(self, hub_url, token):
        self.hub_url = hub_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"

    def request(self, method, path, expect=(200,), **kwargs):
        kwargs.setdefault("timeout", TIMEOUT)
        reply = self.session.request(method, f"{self.hub_url}/hub/api{path}", **kwargs)
        if reply.status_code not in expect:
            raise AssertionError(f"{method} /hub/api{path}: HTTP {reply.status_code}, wanted {expect}: {reply.text[:500]}")
        return reply

    def user(self, name):
        reply = self.request("GET", f"/users/{name}", expect=(200, 404))
        return reply.json() if reply.status_code == 200 else None

    def ensure_user(self, name):
        """The user's model; created first if the hub does not know them yet (they never logged in)."""
        return self.user(name) or self.request("POST", f"/users/{name}", expect=(201,)).json()

    def server(self, name):
        """The model of the user's default server, or None when it is not running."""
        return ((self.user(name) or {}).get("servers") or {}).get("")

    def stop_server(self, name, timeout=120):
        self.request("DELETE", f"/users/{name}/server", expect=(202, 204, 400))
        deadline = time.monotonic() + timeout
        while self.server(name):
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}'s server still there {timeout} s after the stop request")
            time.sleep(0.25)

    def user_token(self, name, note="smoke test"):
        """A short-lived token of `name`, with the user's own permissions."""
        body = {"note": note, "expires_in": 3600}
        return self.request("POST", f"/users/{name}/tokens", json=body, expect=(200, 201)).json()["token"]


@dataclass
class Spawn:
    profile: str
    seconds: float
    events: list = field(default_factory=list)


class UserServer:
    """One user's default server, started with a profile; run() executes code in a kernel inside it."""

    def __init__(self, hub, name):
        self.hub, self.name = hub, name
        self.token = hub.user_token(name)
        self._kernel = None

    @property
    def url(self):
        server = self.hub.user(self.name)["servers"].get("")
        if not server or not server.get("ready"):
            raise AssertionError(f"{self.name} has no ready server: {server}")
        return self.hub.hub_url + server["url"]

    def spawn_page(self, session):
        """The hub's spawn page as the user sees it, through their logged-in `session` (JupyterHub 5's pages
        take no API tokens). Their server must not be running, or the hub redirects to it."""
        reply = session.get(f"{self.hub.hub_url}/hub/spawn/{self.name}", timeout=TIMEOUT, allow_redirects=False)
        if reply.status_code != 200:
            raise AssertionError(f"GET /hub/spawn/{self.name}: HTTP {reply.status_code} "
                                 f"{reply.headers.get('Location', '')}, wanted the form (200)")
        return reply.text

    def start(self, profile):
        """Start the server with `profile` (a slug of the spawn form); return the Spawn with its progress events.

        The progress stream is opened while the spawn is pending (JupyterHub only replays what happened
        once it is connected; a finished spawn reports a single ready event).
        """
        self._kernel = None
        started = time.monotonic()
        outcome = {}

        def request():
            try:
                outcome["reply"] = self.hub.request("POST", f"/users/{self.name}/server", json={"profile": profile},
                                                    expect=(201, 202), timeout=SPAWN_TIMEOUT)
            except BaseException as e:  # re-raised in the test's thread
                outcome["error"] = e

        thread = threading.Thread(target=request, daemon=True)
        thread.start()
        events = self._progress(thread, outcome)
        thread.join(SPAWN_TIMEOUT)
        if "error" in outcome:
            raise outcome["error"]
        self.wait_ready()
        return Spawn(profile=profile, seconds=time.monotonic() - started, events=events)

    def _progress(self, request_thread, outcome):
        path = f"/users/{self.name}/server/progress"
        deadline = time.monotonic() + SPAWN_TIMEOUT
        while time.monotonic() < deadline:
            # Read before asking: a spawn that has ended by then is either ready (200) or failed.
            finished = not request_thread.is_alive()
            reply = self.hub.session.get(f"{self.hub.hub_url}/hub/api{path}", stream=True, timeout=SPAWN_TIMEOUT)
            if reply.status_code == 200:
                return [json.loads(line[len(b"data:"):]) for line in reply.iter_lines() if line.startswith(b"data:")]
            text = reply.text
            if "error" in outcome:
                raise outcome["error"]
            # 404 until the hub has made the user's spawner, 400 until the spawn is pending
            if reply.status_code not in (400, 404) or finished:
                raise AssertionError(f"GET /hub/api{path}: HTTP {reply.status_code}: {text[:300]}; "
                                     f"the start request answered {outcome.get('reply')}")
            time.sleep(0.05)
        raise AssertionError(f"no progress stream for {self.name} within {SPAWN_TIMEOUT} s")

    def _ready(self):
        server = self.hub.server(self.name)
        return bool(server and server.get("ready"))

    def wait_ready(self, timeout=SPAWN_TIMEOUT):
        deadline = time.monotonic() + timeout
        while not self._ready():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}'s server not ready within {timeout} s")
            time.sleep(0.25)

    def stop(self, timeout=120):
        self._close_kernel()
        self.hub.stop_server(self.name, timeout)

    def kernel(self):
        """The server's kernel (started on first use, again after a restart); variables persist between calls."""
        if self._kernel is None:
            self._kernel = Kernel(self.url, self.token)
        return self._kernel

    def run(self, code, timeout=120):
        return self.kernel().run(code, timeout=timeout)

    def run_json(self, code, timeout=120):
        return self.kernel().run_json(code, timeout=timeout)

    def _close_kernel(self):
        kernel, self._kernel = self._kernel, None
        if kernel is not None:
            try:
                kernel.close()
            except Exception:
                pass  # the server is being stopped anyway


class _ProfileInputs(HTMLParser):
    """Collects the profile choices of a spawn form: radio inputs or <option>s of a field named "profile"."""

    def __init__(self):
        super().__init__()
        self.choices = []  # (value, chosen)
        self._in_select = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name") == "profile" and attrs.get("type") == "radio":
            self.choices.append((attrs.get("value"), "checked" in attrs))
        elif tag == "select":
            self._in_select = attrs.get("name") == "profile"
        elif tag == "option" and self._in_select:
            self.choices.append((attrs.get("value"), "selected" in attrs))

    def handle_endtag(self, tag):
        if tag == "select":
            self._in_select = False


def profile_choices(html):
    """[(slug, chosen), ...] in page order."""
    parser = _ProfileInputs()
    parser.feed(html)
    return parser.choices


def page_text(html):
    """The visible words of a page, whitespace collapsed, for assertions on what a user reads."""
    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", html)
    text = re.sub(r"<[^>]+>", " ", text)
    return re.sub(r"\s+", " ", text).strip()

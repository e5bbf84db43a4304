"""Running code inside a user's server, through a kernel, as a notebook does.

    with Kernel(server_url, token) as kernel:      # server_url e.g. http://127.0.0.1:8000/user/alice/
        print(kernel.run("import os; print(os.environ['PANGEO_SCRATCH'])"))

The kernel is started with the server's REST API (POST api/kernels) and driven over its websocket
(api/kernels/<id>/channels, the JSON protocol JupyterLab's older clients speak). Variables persist between
run() calls, as between notebook cells.
"""

import json
import re
import time
import uuid
from urllib.parse import urlsplit

import requests
import websocket

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class KernelError(Exception):
    """The code raised inside the kernel; the message is the kernel's traceback, without colours."""


class Kernel:
    def __init__(self, server_url, token, timeout=60):
        self.server_url = server_url if server_url.endswith("/") else server_url + "/"
        self.headers = {"Authorization": f"token {token}"}
        self.session_id = uuid.uuid4().hex
        reply = requests.post(self.server_url + "api/kernels", json={"name": "python3"}, headers=self.headers, timeout=timeout)
        if reply.status_code != 201:
            raise KernelError(f"starting a kernel at {self.server_url}api/kernels: HTTP {reply.status_code} {reply.text[:500]}")
        self.id = reply.json()["id"]
        self.token, self.timeout = token, timeout
        self.connect()
        # The first request waits for the kernel to come up (a cold start imports a lot).
        self.run("pass", timeout=timeout)

    def connect(self):
        """(Re)open the kernel's websocket, as JupyterLab does when a connection drops: same kernel, same state."""
        parts = urlsplit(self.server_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        channels = f"{scheme}://{parts.netloc}{parts.path}api/kernels/{self.id}/channels?session_id={self.session_id}"
        self.ws = websocket.create_connection(channels, header=[f"Authorization: token {self.token}"],
                                              timeout=self.timeout)

    def run(self, code, timeout=120):
        """Execute `code`; return what it printed to stdout. Raise KernelError with the traceback if it raised."""
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "smoke", "session": self.session_id,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        stdout, stderr, error = [], [], None
        deadline = time.monotonic() + timeout
        idle = replied = False
        while not (idle and replied):
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise websocket.WebSocketTimeoutException()
                self.ws.settimeout(remaining)
                msg = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                # Interrupted, so that the kernel can run the next code instead of queueing it behind this.
                requests.post(self.server_url + f"api/kernels/{self.id}/interrupt", headers=self.headers, timeout=30)
                raise TimeoutError(f"no result from the kernel within {timeout} s for:\n{code}\n"
                                   f"--- stdout so far ---\n{''.join(stdout)}\n--- stderr ---\n{''.join(stderr)}") from None
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                (stdout if content["name"] == "stdout" else stderr).append(content["text"])
            elif kind == "error":
                error = ANSI.sub("", "\n".join(content["traceback"])) or f"{content['ename']}: {content['evalue']}"
            elif kind == "execute_reply":
                replied = True
                if content["status"] != "ok" and error is None:
                    error = f"{content.get('ename')}: {content.get('evalue')}"
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
        if error is not None:
            raise KernelError(f"{error}\n--- code ---\n{code}\n--- stderr ---\n{''.join(stderr)}")
        return "".join(stdout)

    def shown_error(self, code, timeout=120):
        """What a researcher reads first when `code` raises in a notebook cell: the first line of the error
        the kernel shows (the image's pangeo_messages may shorten it). Fails if `code` raises nothing."""
        try:
            self.run(code, timeout=timeout)
        except KernelError as e:
            return str(e).split("\n", 1)[0]
        raise AssertionError(f"no error from:\n{code}")

    def run_json(self, code, timeout=120):
        """Execute `code`, whose last printed line is JSON, and return that value."""
        out = self.run(code, timeout=timeout)
        return json.loads(out.strip().splitlines()[-1])

    def close(self):
        try:
            self.ws.close()
        finally:
            requests.delete(self.server_url + f"api/kernels/{self.id}", headers=self.headers, timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run(server_url, token, code, timeout=120):
    """One-off: run `code` in a fresh kernel of the server and return its stdout (see Kernel.run)."""
    with Kernel(server_url, token) as kernel:
        return kernel.run(code, timeout=timeout)

"""A stand-in for jupyterhub-singleuser in the login storm: standard library only, a few MB, instant start.

It answers every GET on the address the hub gives it (JUPYTERHUB_SERVICE_URL) with 200, which is all the
hub's readiness check and the proxy's route need. Fifty real JupyterLab servers (each ~3 CPU-seconds to
start) would measure this 2-core machine's CPU, not the hub. Arguments the hub passes are ignored.
"""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"server": "benchmarks/light_server.py", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    server = ThreadingHTTPServer((url.hostname, url.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # the local spawner stops servers with SIGINT
        pass


if __name__ == "__main__":
    main()

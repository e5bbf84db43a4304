"""The local stand-in for the Kubernetes service-account token issuer (what EKS's OIDC provider is to IRSA).

    python -m deployer.local.token_issuer --port P --token-file F --subject system:serviceaccount:ns:name

Serves OIDC discovery and its public keys (JWKS) on 127.0.0.1, and keeps a fresh signed token for one
ServiceAccount in F (mode 0600), rewritten well before it expires, as the kubelet rotates projected tokens.
SeaweedFS's STS trusts tokens signed by this issuer (deployer/local/scratch.iam_config). The key lives only
in this process's memory. Runs in the hub environment (pyjwt, cryptography).
"""

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from deployer.local.scratch import AUDIENCE

TOKEN_LIFETIME_S = 3600
ROTATE_EVERY_S = 600
KEY_ID = "pangeo-local"


def issue(key, issuer, subject, now=None):
    now = int(now or time.time())
    return jwt.encode({"iss": issuer, "sub": subject, "aud": AUDIENCE, "iat": now, "nbf": now,
                       "exp": now + TOKEN_LIFETIME_S}, key, algorithm="RS256", headers={"kid": KEY_ID})


def write_token(path, token):
    tmp = path.with_suffix(".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    os.replace(tmp, path)


def serve(port, token_file, subject):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    public.update(kid=KEY_ID, use="sig", alg="RS256")
    issuer = f"http://127.0.0.1:{port}"
    documents = {
        "/.well-known/openid-configuration": {
            "issuer": issuer, "jwks_uri": f"{issuer}/keys", "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"]},
        "/keys": {"keys": [public]},
        "/": {"status": "ok"},
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = documents.get(self.path)
            data = json.dumps(body).encode() if body else b"{}"
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)

    def rotate():
        while True:
            write_token(token_file, issue(key, issuer, subject))
            time.sleep(ROTATE_EVERY_S)

    write_token(token_file, issue(key, issuer, subject))
    threading.Thread(target=rotate, daemon=True).start()
    server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-file", type=Path, required=True)
    parser.add_argument("--subject", required=True)
    args = parser.parse_args()
    serve(args.port, args.token_file, args.subject)


if __name__ == "__main__":
    main()

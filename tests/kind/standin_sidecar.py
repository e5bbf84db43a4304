"""Runs deployer/local/github_standin.py as a sidecar of the hub pod in the kind cluster.

The local stand-in listens on 127.0.0.1 only; here it must also answer the NodePort that kind maps to the
host (tests/kind/kind-config.yaml), so this listens on STANDIN_ADDRESS (default: all interfaces of the
pod). The hub reaches it as http://localhost:8020 inside its pod; the tests reach the same URL on the host.
Only the stand-in's own app is used: make_app and load_directory.
"""

import asyncio
import os
import secrets
import sys
from pathlib import Path

HERE = Path(os.environ.get("STANDIN_DIR", Path(__file__).resolve().parent))
sys.path.insert(0, str(HERE))

import github_standin  # noqa: E402  (mounted next to this file from the ConfigMap)


async def main():
    directory = github_standin.load_directory(HERE / "users.yaml")
    key = os.environ.get("PANGEO_STANDIN_TOKEN_KEY") or secrets.token_hex(32)
    port = int(os.environ.get("STANDIN_PORT", "8020"))
    github_standin.make_app(directory, key).listen(port, address=os.environ.get("STANDIN_ADDRESS", "0.0.0.0"))
    print(f"GitHub stand-in on port {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())

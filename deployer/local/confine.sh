#!/bin/sh
# confine.sh DATA_DIR [--keep-cwd] COMMAND...: run a user's process (a server, a Dask scheduler or worker;
# started by `unshare --mount --pid --fork --mount-proc`) with the local stack's own state out of its sight,
# as a pod cannot see the hub's volumes or Secrets: empty mounts over the hub database, the services' and the
# store's directories, the logs and the development secrets. --keep-cwd keeps the working directory (a Dask
# cluster's, which holds its TLS certificate) visible at its place. Homes (DATA/homes/<user>) stay as they are.
set -eu
data=$1
shift
keep=""
if [ "${1:-}" = "--keep-cwd" ]; then
    keep=$(pwd -P)
    shift
    park=$(mktemp -d)
    mount --bind "$keep" "$park"
fi
for private in run hub gateway scratch logs; do
    if [ -d "$data/$private" ]; then
        mount -t tmpfs -o size=64k,mode=0000 pangeo-stack-private "$data/$private"
    fi
done
if [ -e "$data/secrets.json" ]; then
    mount --bind /dev/null "$data/secrets.json"
fi
if [ -n "$keep" ]; then
    mkdir -p "$keep"
    mount --bind "$park" "$keep"
    umount "$park"
    rmdir "$park"
    cd "$keep"
fi
exec "$@"

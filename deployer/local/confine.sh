#!/bin/sh
# confine.sh DATA_DIR COMMAND...: run a user's server (started by `unshare --mount --pid --fork --mount-proc`)
# with the local stack's own state out of its sight, as a pod cannot see the hub's volumes or Secrets:
# empty, unreadable mounts over the hub database, the services' and the store's directories, the logs and the
# development secrets. The user's home (DATA/homes/<user>) stays as it is.
set -eu
data=$1
shift
for private in run hub gateway scratch logs; do
    if [ -d "$data/$private" ]; then
        mount -t tmpfs -o size=64k,mode=0000 pangeo-stack-private "$data/$private"
    fi
done
if [ -e "$data/secrets.json" ]; then
    mount --bind /dev/null "$data/secrets.json"
fi
exec "$@"

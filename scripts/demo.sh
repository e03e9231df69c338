#!/bin/sh
# Build a small busybox bundle and run one container in it that shows what it sees.
#   scripts/demo.sh [OCIRUN]
set -eu
OCIRUN=${1:-ocirun}
DEMO=${DEMO_DIR:-/var/lib/ocirun/demo}

if [ ! -x /bin/busybox ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi
if [ ! -x "$DEMO/rootfs/bin/busybox" ]; then
    mkdir -p "$DEMO/rootfs/bin"
    cp /bin/busybox "$DEMO/rootfs/bin/busybox"
    for a in $(/bin/busybox --list); do
        [ "$a" = busybox ] || ln -sf busybox "$DEMO/rootfs/bin/$a"
    done
    mkdir -p "$DEMO/rootfs/proc" "$DEMO/rootfs/sys" "$DEMO/rootfs/dev" "$DEMO/rootfs/etc" "$DEMO/rootfs/tmp"
    printf 'root:x:0:0:root:/root:/bin/sh\n' > "$DEMO/rootfs/etc/passwd"
    printf 'root:x:0:\n' > "$DEMO/rootfs/etc/group"
fi
rm -f "$DEMO/config.json"
"$OCIRUN" spec --bundle "$DEMO"
# A non-interactive process that prints what the container sees.
sed -i -e 's/"terminal": true/"terminal": false/' \
       -e 's/"hostname": "ocirun"/"hostname": "ocirun-demo"/' "$DEMO/config.json"
python3 - "$DEMO/config.json" <<'PY'
import json, sys
path = sys.argv[1]
cfg = json.load(open(path))
cfg["process"]["args"] = ["sh", "-c",
    "echo \"hostname: $(hostname)\"; echo \"id: $(id)\"; echo namespaces:; "
    "for n in pid net ipc uts mnt cgroup; do echo \"  $n -> $(readlink /proc/self/ns/$n)\"; done; "
    "echo mounts:; awk '{print \"  \" $5 \"  \" $9}' /proc/self/mountinfo"]
json.dump(cfg, open(path, "w"), indent=2)
PY
exec "$OCIRUN" run --bundle "$DEMO" "demo-$$"

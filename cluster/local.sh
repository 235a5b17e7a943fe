#!/usr/bin/env bash
# A multi-node Ray cluster on this one machine, on loopback: a head and N worker nodes,
# each a separate Ray node (own raylet, own CPUs), for trying `--address` and for tests.
#
#   bash cluster/local.sh start [N_WORKERS]   # default 2; prints the address and env to use
#   bash cluster/local.sh status
#   bash cluster/local.sh stop                # stops exactly this cluster's processes
#
# Settings (environment): TUNE_AE_CLUSTER_DIR (state folder, default /tmp/tune_ae_cluster;
# keep it short, Ray's socket paths must fit in 107 characters), TUNE_AE_CLUSTER_PORT
# (GCS port, default 6390), TUNE_AE_CLUSTER_CPUS (CPUs per node, default 1).
# Token authentication is on: the token is written to $TUNE_AE_CLUSTER_DIR/token (mode 600).
set -euo pipefail

DIR=${TUNE_AE_CLUSTER_DIR:-/tmp/tune_ae_cluster}
PORT=${TUNE_AE_CLUSTER_PORT:-6390}
CPUS=${TUNE_AE_CLUSTER_CPUS:-1}
RAY=${RAY:-ray}
ADDRESS=127.0.0.1:$PORT

die() { echo "error: $*" >&2; exit 2; }

# The cluster's daemons carry its temp dir ($DIR/ray) on their command lines; their children
# (agents, trial workers) rename themselves "ray::...", so they are found as descendants.
descendants() {
    local child
    for child in $(pgrep -P "$1" || true); do echo "$child"; descendants "$child"; done
}
cluster_pids() {
    local pid
    for pid in $(pgrep -f -- "$DIR/ray/" || true); do echo "$pid"; descendants "$pid"; done | sort -u
}

start() {
    local workers=${1:-2}
    command -v "$RAY" >/dev/null || die "'$RAY' not found: activate the environment tune_ae is installed in, or set RAY=/path/to/ray"
    [[ $workers =~ ^[0-9]+$ ]] || die "N_WORKERS must be a whole number, got '$workers'"
    [[ -f $DIR/address ]] && die "a cluster is already running from $DIR ($(cat "$DIR/address")); run 'bash cluster/local.sh stop' first"
    mkdir -p "$DIR"
    umask 077
    python3 -c 'import secrets; print(secrets.token_hex(32))' > "$DIR/token"
    export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=$DIR/token
    "$RAY" start --head --node-ip-address=127.0.0.1 --port="$PORT" --num-cpus="$CPUS" \
        --include-dashboard=false --disable-usage-stats --temp-dir="$DIR/ray" >"$DIR/head.log" 2>&1 \
        || { cat "$DIR/head.log" >&2; stop; die "the head node did not start (log above)"; }
    for ((i = 1; i <= workers; i++)); do
        "$RAY" start --address="$ADDRESS" --node-ip-address=127.0.0.1 --num-cpus="$CPUS" \
            --disable-usage-stats >"$DIR/worker-$i.log" 2>&1 \
            || { cat "$DIR/worker-$i.log" >&2; stop; die "worker node $i did not start (log above)"; }
    done
    echo "$ADDRESS" > "$DIR/address"
    echo "Ray cluster: 1 head + $workers worker node(s) on $ADDRESS, $CPUS CPU(s) each. To use it:"
    echo "  export RAY_ADDRESS=$ADDRESS RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=$DIR/token"
    echo "  python -m tune_ae.run --grid smoke --storage-path \$PWD/results   # a path every node sees"
}

# True while any of the pids still runs (a zombie waiting for its parent has already ended).
alive() { ps -o stat= -p "$(IFS=,; echo "$*")" 2>/dev/null | grep -qv '^Z'; }

stop() {
    local pids
    pids=$(cluster_pids)  # taken once, before anything dies and orphans its children
    if [[ -n $pids ]]; then
        kill -TERM $pids 2>/dev/null || true
        for _ in $(seq 15); do alive $pids || break; sleep 0.2; done  # 3 s grace, then KILL
        kill -KILL $pids 2>/dev/null || true
    fi
    rm -f "$DIR/address"
    echo "stopped the cluster in $DIR"
}

status() {
    [[ -f $DIR/address ]] || { echo "no cluster running from $DIR"; return 1; }
    echo "address $(cat "$DIR/address"), $(cluster_pids | wc -l) processes"
}

case ${1:-} in
    start) start "${2:-2}" ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: bash cluster/local.sh start [N_WORKERS] | status | stop" ;;
esac

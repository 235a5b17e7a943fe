#!/usr/bin/env bash
# A multi-node Ray cluster on this one machine: a head and N worker nodes, each a separate
# Ray node (own raylet, own CPUs), for trying `--address` and for tests.
#
#   bash cluster/local.sh start [N_WORKERS]   # default 2; prints the address and env to use
#   bash cluster/local.sh status
#   bash cluster/local.sh stop                # stops exactly this cluster's processes
#
# State: a new private folder per cluster (mode 700, from mktemp, under /tmp: Ray's socket
# paths must fit in 107 characters), holding the token (mode 600), the logs, Ray's temp dir
# and the session ids of its nodes. TUNE_AE_CLUSTER_DIR names the folder instead (created
# 700 if missing; an existing one must be yours and 700). The last started folder is
# remembered in ~/.cache/tune_ae/cluster, so `stop` and `status` find it without the variable.
# Other settings: TUNE_AE_CLUSTER_PORT (GCS port, default 6390), TUNE_AE_CLUSTER_CPUS
# (CPUs per node, default 1).
#
# What listens where: Ray 2.60.0 binds the gRPC servers of the GCS, of every raylet and of
# every core worker on all interfaces, whatever --node-ip-address says, and the runtime-env
# agent on the node's own address; no flag of `ray start` confines them (cluster/README.md,
# "What listens"). Token authentication is on, so every one of them refuses a caller without
# the token; a host firewall is what keeps them off the network.
set -euo pipefail
umask 077  # every file and folder this script makes is private

PORT=${TUNE_AE_CLUSTER_PORT:-6390}
CPUS=${TUNE_AE_CLUSTER_CPUS:-1}
RAY=${RAY:-ray}
ADDRESS=127.0.0.1:$PORT
REMEMBER=${XDG_CACHE_HOME:-$HOME/.cache}/tune_ae/cluster

die() { echo "error: $*" >&2; exit 2; }

state_dir() {  # the folder of the cluster to act on: TUNE_AE_CLUSTER_DIR, else the remembered one
    if [[ -n ${TUNE_AE_CLUSTER_DIR:-} ]]; then echo "$TUNE_AE_CLUSTER_DIR"
    elif [[ -f $REMEMBER ]]; then cat "$REMEMBER"
    else die "no cluster started here; run 'bash cluster/local.sh start' (or set TUNE_AE_CLUSTER_DIR)"; fi
}

private_dir() {  # a folder only we can enter: made now, or ours and mode 700 already
    local dir=$1
    if [[ -e $dir ]]; then
        [[ -d $dir && -O $dir && $(stat -c %a "$dir") == 700 ]] \
            || die "$dir exists and is not a private folder of yours (mode 700); pick another TUNE_AE_CLUSTER_DIR"
    else
        mkdir -m 700 -p "$dir"
    fi
}

# Each node's daemons are started in a session of their own (setsid); its id is recorded, and
# every process of the cluster inherits TUNE_AE_CLUSTER_ID. `stop` ends the processes of those
# sessions or with that mark (daemons, agents, trial workers, orphans of a killed node) and
# nothing else: not a process that merely names the cluster's folder.
start_node() {  # start_node NAME RAY_START_ARGS...
    local name=$1; shift
    (exec setsid "$RAY" start "$@" --disable-usage-stats >"$DIR/$name.log" 2>&1) &
    local sid=$!
    echo "$sid" >> "$DIR/sessions"
    wait "$sid"
}

start() {
    local workers=${1:-2}
    command -v "$RAY" >/dev/null || die "'$RAY' not found: activate the environment tune_ae is installed in, or set RAY=/path/to/ray"
    [[ $workers =~ ^[0-9]+$ ]] || die "N_WORKERS must be a whole number, got '$workers'"
    if [[ -n ${TUNE_AE_CLUSTER_DIR:-} ]]; then DIR=$TUNE_AE_CLUSTER_DIR; private_dir "$DIR"
    else DIR=$(mktemp -d /tmp/tune_ae_cluster.XXXXXX); fi
    [[ -f $DIR/address ]] && die "a cluster is already running from $DIR ($(cat "$DIR/address")); run 'bash cluster/local.sh stop' first"
    rm -f "$DIR/token" "$DIR/sessions"
    python3 -c 'import secrets; print(secrets.token_hex(32))' > "$DIR/token"  # new file, mode 600 (umask)
    mkdir -p "$(dirname "$REMEMBER")" && echo "$DIR" > "$REMEMBER"
    export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=$DIR/token
    export TUNE_AE_CLUSTER_ID=$DIR  # inherited by every process of the cluster; `stop` looks for it
    start_node head --head --node-ip-address=127.0.0.1 --port="$PORT" --num-cpus="$CPUS" \
        --include-dashboard=false --temp-dir="$DIR/ray" \
        || { cat "$DIR/head.log" >&2; stop; die "the head node did not start (log above)"; }
    for ((i = 1; i <= workers; i++)); do
        start_node "worker-$i" --address="$ADDRESS" --node-ip-address=127.0.0.1 --num-cpus="$CPUS" \
            || { cat "$DIR/worker-$i.log" >&2; stop; die "worker node $i did not start (log above)"; }
    done
    echo "$ADDRESS" > "$DIR/address"
    echo "Ray cluster: 1 head + $workers worker node(s) on $ADDRESS, $CPUS CPU(s) each, state in $DIR. To use it:"
    echo "  export RAY_ADDRESS=$ADDRESS RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=$DIR/token"
    echo "  python -m tune_ae.run --grid smoke --storage-path \$PWD/results   # a path every node sees"
}

cluster_pids() {  # the processes of the recorded sessions, and any that carry this cluster's mark
    local sid proc
    {
        if [[ -f $DIR/sessions ]]; then
            for sid in $(cat "$DIR/sessions"); do pgrep -s "$sid" || true; done
        fi
        # A Ray process orphaned by a killed node (or one that left the session) still inherited the mark.
        for proc in /proc/[0-9]*; do
            if grep -qzx "TUNE_AE_CLUSTER_ID=$DIR" "$proc/environ" 2>/dev/null; then echo "${proc#/proc/}"; fi
        done
    } | sort -u
}

# True while any of the pids still runs (a zombie waiting for its parent has already ended).
alive() { ps -o stat= -p "$(IFS=,; echo "$*")" 2>/dev/null | grep -qv '^Z'; }

stop() {
    DIR=${DIR:-$(state_dir)}
    local pids
    pids=$(cluster_pids)  # taken once, before anything dies and orphans its children
    if [[ -n $pids ]]; then
        kill -TERM $pids 2>/dev/null || true
        for _ in $(seq 15); do alive $pids || break; sleep 0.2; done  # 3 s grace, then KILL
        kill -KILL $pids 2>/dev/null || true
    fi
    # A process started while the others died (a worker a raylet was spawning) is not in the
    # first list, and a killed one takes a moment to go: look again until none is left (2 s at most).
    for _ in $(seq 10); do
        pids=$(cluster_pids | while read -r pid; do if alive "$pid"; then echo "$pid"; fi; done)
        [[ -z $pids ]] && break
        kill -KILL $pids 2>/dev/null || true
        sleep 0.2
    done
    rm -f "$DIR/address" "$DIR/sessions"
    echo "stopped the cluster in $DIR"
}

status() {
    DIR=$(state_dir)
    [[ -f $DIR/address ]] || { echo "no cluster running from $DIR"; return 1; }
    echo "address $(cat "$DIR/address"), $(cluster_pids | wc -l) processes, state in $DIR"
}

case ${1:-} in
    start) start "${2:-2}" ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: bash cluster/local.sh start [N_WORKERS] | status | stop" ;;
esac

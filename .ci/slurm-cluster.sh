#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try `hydra/launcher=slurm` (and run the tests marked
# `slurm`) before submitting to a real cluster. Needs root and Debian/Ubuntu packages (installed when
# missing): slurmctld, slurmd, munge, slurm-client. Idempotent.
#
#   sudo .ci/slurm-cluster.sh up       # install, write /etc/slurm/slurm.conf, start munged/slurmctld/slurmd, wait for the node
#   sudo .ci/slurm-cluster.sh down     # stop the daemons this script started
#   .ci/slurm-cluster.sh status        # sinfo, or why there is no cluster
#
# The cluster: partition `debug` (default) with this host as its only node (its CPUs and memory, no
# GPUs), no accounting (sacct has nothing to read), proctrack/linuxproc and task/none (no cgroups),
# KillWait=5 s (SIGTERM to SIGKILL), short waits so that tests run quickly: a requeued job may start
# again after 5 s (cred_expire; SLURM's default is 120 s) and pending jobs are looked at every second. Daemon state, logs and pid files
# live in $HW_SLURM_DIR (default /var/lib/hw_hparams-slurm). An /etc/slurm/slurm.conf this script
# did not write is never replaced.
set -euo pipefail

state="${HW_SLURM_DIR:-/var/lib/hw_hparams-slurm}"
conf=/etc/slurm/slurm.conf
marker="# written by hw_hparams .ci/slurm-cluster.sh"
packages=(slurmctld slurmd munge slurm-client)

say() { echo "slurm-cluster: $*" >&2; }
die() { say "$*"; exit 1; }

node_state() { sinfo -h -N -o %t 2>/dev/null | head -1; }

alive() {  # alive PIDFILE: the process named in PIDFILE runs
    [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_packages() {
    local missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get: install slurmctld, slurmd and munge yourself"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
}

conf_text() {
    local host node
    host="$(hostname -s)"
    # `slurmd -C` prints this machine's NodeName line (CPUs, sockets, cores, RealMemory).
    node="$(slurmd -C | head -1)"
    [[ "$node" == NodeName=* ]] || die "slurmd -C printed no node line: $node"
    cat <<EOF
$marker
ClusterName=hwlocal
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=5
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1,sched_min_interval=0
KillWait=5
OverTimeLimit=0
MinJobAge=600
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
$node State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

write_conf() {  # write_conf TEXT
    if [[ -e "$conf" ]] && ! grep -qF "$marker" "$conf"; then
        die "$conf exists and was not written by this script; not replacing it (move it away to use the local cluster)"
    fi
    mkdir -p /etc/slurm "$state"/{ctld,spool,log}
    printf '%s\n' "$1" >"$conf"
}

start_daemons() {
    if ! alive /run/munge/munged.pid; then
        mkdir -p /run/munge && chown munge:munge /run/munge && chmod 0755 /run/munge
        runuser -u munge -- /usr/sbin/munged
    fi
    alive "$state/slurmctld.pid" || /usr/sbin/slurmctld
    alive "$state/slurmd.pid" || /usr/sbin/slurmd
}

wait_idle() {
    local s
    for _ in $(seq 60); do
        s="$(node_state)"
        case "$s" in
            idle | mix | alloc) say "up: $(sinfo -h -o '%P %D node(s) %t' | head -1)"; return 0 ;;
            down* | drain*) scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 1
    done
    die "the node did not become idle in 60 s (state: ${s:-none}); see $state/log/"
}

up() {
    [[ $(id -u) == 0 ]] || die "starting the cluster needs root: sudo $0 up"
    install_packages
    local text
    text="$(conf_text)"
    if [[ "$text" == "$(cat "$conf" 2>/dev/null)" ]]; then
        if [[ "$(node_state)" =~ ^(idle|mix|alloc)$ ]]; then
            say "already up: $(sinfo -h -o '%P %D node(s) %t' | head -1)"
            return 0
        fi
    elif alive "$state/slurmctld.pid" || alive "$state/slurmd.pid"; then
        down  # running with another configuration: start again with this one
    fi
    write_conf "$text"
    start_daemons
    wait_idle
}

down() {
    local f
    for f in "$state/slurmd.pid" "$state/slurmctld.pid" /run/munge/munged.pid; do
        if alive "$f"; then
            kill "$(cat "$f")"
            for _ in $(seq 20); do alive "$f" || break; sleep 0.5; done
        fi
    done
    say "down"
}

status() {
    command -v sinfo >/dev/null || die "no SLURM client (sinfo) installed"
    sinfo || die "no cluster answers (start one with: sudo $0 up)"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac

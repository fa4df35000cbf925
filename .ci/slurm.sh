#!/usr/bin/env bash
# A throwaway one-node Slurm cluster for cg's tests, on loopback, in a temporary directory.
#
#   eval "$(.ci/slurm.sh start)"   # exports SLURM_CONF, CG_TEST_SLURM (=1) and CG_TEST_SLURM_DIR
#   sbatch / squeue / scancel ...  # the clients find the cluster through SLURM_CONF
#   eval "$(.ci/slurm.sh stop)"    # stops the daemons, removes the directory, unsets the vars
#
# `start` installs Debian's `slurm-wlm` and `munge` when `slurmctld` is missing (needs root and
# apt), makes a munge key, and starts `munged` (its own socket), `slurmctld` and `slurmd` as root on
# 127.0.0.1 with free ports, one node `cgnode` with this machine's cores, one partition `debug`.
# No accounting database: `sacct` answers that accounting is disabled (cg then shows what `squeue`
# knows). Only the `export`/`unset` lines go to stdout; progress goes to stderr.
set -euo pipefail

MARKER=.cg-slurm
NODE=cgnode

log() { echo "slurm.sh: $*" >&2; }
die() { log "$*"; exit 1; }

install_slurm() {
    [[ $(id -u) -eq 0 ]] || die "slurmctld not found and not root: install slurm-wlm and munge"
    command -v apt-get >/dev/null 2>&1 || die "slurmctld not found and no apt-get: install Slurm by hand"
    log "installing slurm-wlm and munge from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold slurm-wlm munge >&2
}

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

sbin() {
    local name=$1 d
    for d in /usr/sbin /usr/bin /sbin; do
        if [[ -x $d/$name ]]; then echo "$d/$name"; return 0; fi
    done
    command -v "$name"
}

write_conf() {
    local dir=$1 cpus mem ctld_port d_port
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
    ctld_port=$(free_port)
    d_port=$(free_port)
    while [[ $d_port == "$ctld_port" ]]; do d_port=$(free_port); done
    cat > "$dir/slurm.conf" <<EOF
ClusterName=cgtest
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
MessageTimeout=5
SwitchType=switch/none
KillWait=10
MinJobAge=300
SchedulerParameters=defer_batch
NodeName=$NODE NodeHostname=$(hostname) NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
    command -v slurmctld >/dev/null 2>&1 || [[ -x /usr/sbin/slurmctld ]] || install_slurm
    [[ $(id -u) -eq 0 ]] || die "start: the one-node cluster runs its daemons as root"
    local dir
    dir=$(mktemp -d "${TMPDIR:-/tmp}/cg-slurm.XXXXXX")
    touch "$dir/$MARKER"
    mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
    chmod 700 "$dir/munge"
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1 count=1024 status=none
    chmod 400 "$dir/munge/munge.key"
    "$(sbin munged)" --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
        --seed-file="$dir/munge/munged.seed" >&2 \
        || { cat "$dir/munge/munged.log" >&2 || true; rm -rf "$dir"; die "munged did not start"; }
    write_conf "$dir"
    export SLURM_CONF=$dir/slurm.conf
    "$(sbin slurmctld)" -f "$SLURM_CONF" >&2 \
        || { cat "$dir/slurmctld.log" >&2 || true; stop "$dir" >/dev/null; die "slurmctld did not start"; }
    "$(sbin slurmd)" -f "$SLURM_CONF" -N "$NODE" >&2 \
        || { cat "$dir/slurmd.log" >&2 || true; stop "$dir" >/dev/null; die "slurmd did not start"; }
    local state=""
    for _ in $(seq 1 60); do
        state=$(timeout 10 sinfo -h -n "$NODE" -o %t 2>/dev/null || true)
        if [[ $state == idle* ]]; then break; fi
        sleep 1
    done
    if [[ $state != idle* ]]; then
        tail -20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
        stop "$dir" >/dev/null
        die "the node did not become idle (state: '${state:-none}')"
    fi
    log "Slurm $(sinfo --version | awk '{print $2}'): node $NODE idle with $(nproc) CPUs, directory $dir"
    echo "export SLURM_CONF=$dir/slurm.conf"
    echo "export CG_TEST_SLURM=1"
    echo "export CG_TEST_SLURM_DIR=$dir"
}

kill_pidfile() {
    local file=$1 pid
    [[ -e $file ]] || return 0
    pid=$(cat "$file" 2>/dev/null || true)
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

stop() {
    local dir=${1:-${CG_TEST_SLURM_DIR:-}}
    [[ -n $dir ]] || die "stop: no directory given and CG_TEST_SLURM_DIR is not set"
    [[ -e $dir/$MARKER ]] || die "stop: $dir is not a directory made by slurm.sh start"
    if [[ -e $dir/slurm.conf ]]; then
        SLURM_CONF=$dir/slurm.conf scancel --quiet --full --partition=debug 2>/dev/null || true
    fi
    kill_pidfile "$dir/slurmd.pid"
    kill_pidfile "$dir/slurmctld.pid"
    kill_pidfile "$dir/munge/munged.pid"
    rm -rf "$dir"
    log "stopped and removed $dir"
    echo "unset SLURM_CONF CG_TEST_SLURM CG_TEST_SLURM_DIR"
}

case ${1:-} in
    start) start ;;
    stop) shift; stop "$@" ;;
    *) echo "usage: $0 start | stop [DIR]" >&2; exit 2 ;;
esac

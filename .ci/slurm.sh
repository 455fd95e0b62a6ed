#!/usr/bin/env bash
# A throwaway single-node SLURM cluster for the cluster tests (tests/test_slurm.py).
#
#   source .ci/slurm.sh && slurm_test_start   # exports SLURM_CONF, ZSLBENCH_TEST_SLURM and SLURM_TEST_DIR
#   ...; slurm_test_stop                       # stops every daemon and deletes its folder
#
# or, without sourcing:  eval "$(.ci/slurm.sh start)"  …  .ci/slurm.sh stop "$SLURM_TEST_DIR"
#
# Debian's slurm-wlm, munge, slurmdbd and mariadb-server are installed when absent (root only). Everything
# lives in one temporary folder and is started here, with no init system: munged on a private socket,
# MariaDB on 127.0.0.1 (accounting storage, so that `sacct` knows every job's final state), slurmdbd,
# slurmctld and one slurmd whose NodeName is this host's short name. No cgroups are needed
# (proctrack/linuxproc, task/none). Requeued jobs start again within seconds: credentials expire after 10 s
# (AuthInfo=cred_expire=10) and the scheduler runs every 2 s.

slurm_test__free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

slurm_test__install() {
    local missing=()
    command -v slurmctld >/dev/null 2>&1 || missing+=(slurm-wlm)
    command -v munged >/dev/null 2>&1 || missing+=(munge)
    command -v slurmdbd >/dev/null 2>&1 || missing+=(slurmdbd)
    command -v mariadbd >/dev/null 2>&1 || missing+=(mariadb-server)
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || { echo "SLURM is not installed and installing it needs root: ${missing[*]}" >&2; return 1; }
    echo "installing ${missing[*]} (apt-get install)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null) >&2
}

slurm_test__wait() {  # slurm_test__wait SECONDS DESCRIPTION COMMAND...: retry COMMAND until it succeeds
    local seconds=$1 what=$2 deadline=$((SECONDS + $1)) output
    shift 2
    while ((SECONDS < deadline)); do
        output=$(timeout 10 "$@" 2>&1) && return 0
        sleep 0.5
    done
    echo "$what did not come up within ${seconds}s: $output" >&2
    return 1
}

slurm_test_start() {
    local dir
    [ "$(id -u)" = 0 ] || { echo "the test cluster runs its daemons as root" >&2; return 1; }
    slurm_test__install || return 1
    dir=$(mktemp -d /tmp/zslbench-slurm.XXXXXX)
    chmod 755 "$dir"
    if ! slurm_test__start_in "$dir"; then
        slurm_test_stop "$dir"
        return 1
    fi
    export SLURM_TEST_DIR="$dir" ZSLBENCH_TEST_SLURM="$dir/slurm.conf" SLURM_CONF="$dir/slurm.conf"
    echo "SLURM test cluster on $(hostname -s): partition debug, $(nproc) CPUs (folder $dir)" >&2
}

slurm_test__start_in() {
    local dir=$1 host cpus memory dbport dbdport ctldport slurmdport password
    host=$(hostname -s)
    cpus=$(nproc)
    memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    dbport=$(slurm_test__free_port); dbdport=$(slurm_test__free_port)
    ctldport=$(slurm_test__free_port); slurmdport=$(slurm_test__free_port)
    password=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
    mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/munge"

    # munge: a private key and socket (clients find it through AuthInfo=socket=…)
    dd if=/dev/urandom bs=1 count=1024 of="$dir/munge/munge.key" status=none
    chown -R munge:munge "$dir/munge" && chmod 755 "$dir/munge" && chmod 400 "$dir/munge/munge.key"
    runuser -u munge -- munged --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.sock" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/seed" \
        || { echo "munged did not start" >&2; return 1; }

    # MariaDB for the accounting storage
    mariadb-install-db --no-defaults --datadir="$dir/mysql" --user=root --auth-root-authentication-method=normal \
        --skip-test-db >"$dir/log/mariadb-install.log" 2>&1 || { cat "$dir/log/mariadb-install.log" >&2; return 1; }
    mariadbd --no-defaults --user=root --datadir="$dir/mysql" --socket="$dir/mysql.sock" --pid-file="$dir/mysql.pid" \
        --bind-address=127.0.0.1 --port="$dbport" --innodb-buffer-pool-size=32M --skip-name-resolve \
        --log-error="$dir/log/mariadb.log" >/dev/null 2>&1 &
    slurm_test__wait 60 "MariaDB" mariadb --no-defaults --socket="$dir/mysql.sock" -uroot -e "SELECT 1" || return 1
    mariadb --no-defaults --socket="$dir/mysql.sock" -uroot -e \
        "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$password'; CREATE DATABASE slurm_acct_db;
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" || return 1

    cat >"$dir/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.sock
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$dbdport
SlurmUser=root
PidFile=$dir/slurmdbd.pid
LogFile=$dir/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$dbport
StorageUser=slurm
StoragePass=$password
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$dir/slurmdbd.conf"

    cat >"$dir/slurm.conf" <<EOF
ClusterName=zslbench-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctldport
SlurmdPort=$slurmdport
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.sock,cred_expire=10
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=1
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$dbdport
AccountingStoragePass=$dir/munge/munge.sock
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF="$dir/slurm.conf"

    slurmdbd || { cat "$dir/log/slurmdbd.log" >&2; return 1; }  # reads the slurmdbd.conf beside $SLURM_CONF
    slurm_test__wait 60 "slurmdbd" sacctmgr -i list cluster || { cat "$dir/log/slurmdbd.log" >&2; return 1; }
    sacctmgr -i add cluster zslbench-test >/dev/null 2>&1 || true
    slurmctld -f "$dir/slurm.conf" || { cat "$dir/log/slurmctld.log" >&2; return 1; }
    slurm_test__wait 60 "slurmctld" scontrol ping || { cat "$dir/log/slurmctld.log" >&2; return 1; }
    slurmd -f "$dir/slurm.conf" || { cat "$dir/log/slurmd.log" >&2; return 1; }
    slurm_test__wait 60 "the node" bash -c '[ "$(sinfo -h -o %t)" = idle ]' \
        || { sinfo >&2; tail -n 20 "$dir/log/slurmd.log" "$dir/log/slurmctld.log" >&2; return 1; }
}

slurm_test__stop_pidfile() {
    local file=$1 pid i
    [ -f "$file" ] || return 0
    pid=$(cat "$file" 2>/dev/null) || return 0
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
}

slurm_test_stop() {
    local dir=${1:-${SLURM_TEST_DIR:-}}
    [ -n "$dir" ] && [ -d "$dir" ] || return 0
    SLURM_CONF="$dir/slurm.conf" scancel --full --quiet --partition=debug 2>/dev/null || true
    slurm_test__stop_pidfile "$dir/slurmd.pid"
    slurm_test__stop_pidfile "$dir/slurmctld.pid"
    slurm_test__stop_pidfile "$dir/slurmdbd.pid"
    slurm_test__stop_pidfile "$dir/mysql.pid"
    slurm_test__stop_pidfile "$dir/munge/munged.pid"
    rm -rf "$dir"
    unset SLURM_TEST_DIR ZSLBENCH_TEST_SLURM SLURM_CONF
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then  # executed, not sourced
    set -euo pipefail
    case "${1:-}" in
        start)
            slurm_test_start
            printf 'export SLURM_TEST_DIR=%q ZSLBENCH_TEST_SLURM=%q SLURM_CONF=%q\n' \
                "$SLURM_TEST_DIR" "$ZSLBENCH_TEST_SLURM" "$SLURM_CONF"
            ;;
        stop) slurm_test_stop "${2:-${SLURM_TEST_DIR:-}}" ;;
        *) echo "usage: $0 start | stop [DIR]" >&2; exit 2 ;;
    esac
fi

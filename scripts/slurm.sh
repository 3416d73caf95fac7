#!/usr/bin/env bash
# slurm.sh - a real single-node Slurm cluster for jobgate's tests and demos, on
# Debian 12 as root, without systemd: munge, [MariaDB + slurmdbd], slurmctld,
# slurmd and [slurmrestd], all started by hand from Debian's packages (22.05).
#
#   scripts/slurm.sh up        install what is missing, write the config, start what is
#                              not running; idempotent and quick (<1 s) when already up
#   scripts/slurm.sh down      cancel every job, then stop the daemons this script started
#       --keep-jobs            do not cancel (slurmctld recovers them at the next `up`)
#       --purge                also wipe slurmctld's state and the accounting database
#                              (job ids start at 1 again)
#   scripts/slurm.sh status    exit 0 when sbatch would work
#
# Daemons are stopped only through their pid files, and only when /proc/PID/exe is
# the expected binary (never pkill/killall). A MariaDB that was already running
# is reused and left running.
#
# Knobs (defaults in brackets):
#   SLURM_ACCOUNTING    dbd | none  [dbd]   dbd: MariaDB + slurmdbd, so sacct works;
#                                           none: only jobcomp/filetxt (`sacct -c`, text)
#   SLURM_REST          1 | 0       [1]     slurmrestd (JWT) on 127.0.0.1:$SLURM_REST_PORT
#   SLURM_REST_PORT                 [6820]
#   SLURM_PROCTRACK     auto | cgroup | linuxproc [auto]  auto: cgroup v1 when usable
#   SLURM_OVERSUBSCRIBE             [FORCE:8]  partition debug (FORCE:8: ~10x the throughput
#                                           of one job per core on a 2-core machine)
#   SLURM_MINJOBAGE                 [300]   seconds an ended job stays in squeue
#   SLURM_TEST_USER                 [slurmtest] unprivileged user (slurmrestd rejects root tokens)
#   SLURM_SKIP_INSTALL  1 | 0       [0]     fail instead of running apt-get
#   SLURM_START_TIMEOUT             [60]    seconds to wait for each daemon
#
# Pitfalls this script handles (each cost hours to find; see the project's notes):
# Debian's binaries are alternatives (/proc/PID/exe is slurmctld-wlm), PID 1 reaps
# zombies late (a Z process counts as gone), DefMemPerCPU is needed with
# CR_Core_Memory, kill_invalid_depend belongs in DependencyParameters, requeued jobs
# wait cred_expire seconds, slurmrestd refuses root and needs SLURM_JWT=daemon.
set -euo pipefail

ETC=/etc/slurm
RUN=/run/slurm
LOGD=/var/log/slurm
CTLD_STATE=/var/spool/slurmctld
SLURMD_SPOOL=/var/spool/slurmd
REST_RUN=/run/slurmrestd
REST_LOG=/var/log/slurmrestd
JWT_KEY=$ETC/jwt_hs256.key
DB_PASS_FILE=$ETC/.slurmdbd-db-pass
# Present when this script started MariaDB (and so may stop it).
OUR_MARIADB=$RUN/mariadb.started-here

SLURM_ACCOUNTING=${SLURM_ACCOUNTING:-dbd}
SLURM_REST=${SLURM_REST:-1}
SLURM_REST_PORT=${SLURM_REST_PORT:-6820}
SLURM_PROCTRACK=${SLURM_PROCTRACK:-auto}
SLURM_OVERSUBSCRIBE=${SLURM_OVERSUBSCRIBE:-FORCE:8}
SLURM_MINJOBAGE=${SLURM_MINJOBAGE:-300}
SLURM_TEST_USER=${SLURM_TEST_USER:-slurmtest}
SLURM_SKIP_INSTALL=${SLURM_SKIP_INSTALL:-0}
TIMEOUT=${SLURM_START_TIMEOUT:-60}

T_START=$(date +%s%N)
elapsed() { local ms=$(( ($(date +%s%N) - T_START) / 1000000 )); printf '%d.%02d' $((ms / 1000)) $((ms % 1000 / 10)); }
log() { printf '[slurm %6ss] %s\n' "$(elapsed)" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

# pid_of PIDFILE EXE: print the pid when the file names a live, non-zombie process
# running EXE (compared through readlink -f: Debian's alternatives).
pid_of() {
  local f=$1 exe=$2 p st
  [ -s "$f" ] || return 1
  p=$(tr -dc '0-9' 2>/dev/null < "$f"); [ -n "$p" ] && [ -d "/proc/$p" ] || return 1
  st=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null || echo X)
  { [ "$st" != Z ] && [ "$st" != X ]; } || return 1
  [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$(readlink -f "$exe")" ] || return 1
  echo "$p"
}
alive() { pid_of "$@" >/dev/null; }

wait_for() { # wait_for SECONDS CMD...
  local end=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.1
  done
}

# stop_pid NAME PIDFILE EXE SECONDS: TERM, then KILL after SECONDS; only that pid.
stop_pid() {
  local name=$1 f=$2 exe=$3 t=$4 p i
  if ! p=$(pid_of "$f" "$exe"); then
    if [ -e "$f" ]; then
      p=$(tr -dc '0-9' < "$f")
      if [ -n "$p" ] && [ -d "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ]; then
        log "$name: pid $p in $f is not $exe: left alone"
        return 0
      fi
      rm -f "$f"
    fi
    return 0
  fi
  kill -TERM "$p" 2>/dev/null || true
  for i in $(seq 1 $(( t * 10 ))); do alive "$f" "$exe" || break; sleep 0.1; done
  if alive "$f" "$exe"; then log "$name: pid $p ignored SIGTERM for ${t}s: SIGKILL"; kill -KILL "$p" 2>/dev/null || true; sleep 0.2; fi
  [ -e "$f" ] && ! alive "$f" "$exe" && rm -f "$f"
  log "$name stopped (pid $p)"
}

# write_if_changed PATH MODE OWNER < content: returns 0 when the file changed.
write_if_changed() {
  local path=$1 mode=$2 owner=$3 tmp
  tmp=$(mktemp)
  cat > "$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path"; then rm -f "$tmp"; return 1; fi
  install -m "$mode" -o "${owner%:*}" -g "${owner#*:}" "$tmp" "$path"; rm -f "$tmp"
}

node_name() { hostname -s; }
ctld_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
node_ok() { sinfo -h -n "$(node_name)" -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated|completing)$'; }
mariadb_up() { mariadb-admin ping >/dev/null 2>&1; }

install_packages() {
  local pkgs="slurm-wlm munge slurmrestd slurmdbd slurm-wlm-jwt-plugin curl perl-base" need="" p
  [ "$SLURM_ACCOUNTING" = dbd ] && pkgs="$pkgs mariadb-server"
  for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need="$need $p"
  done
  [ -z "$need" ] && return 0
  [ "$SLURM_SKIP_INSTALL" = 1 ] && die "missing packages:$need (SLURM_SKIP_INSTALL=1)"
  log "installing:$need"
  export DEBIAN_FRONTEND=noninteractive
  # No init system: the postinst scripts' invoke-rc.d is denied, which is harmless.
  apt-get update -qq || apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $need > /tmp/jobgate-slurm-apt.log 2>&1 \
    || { tail -30 /tmp/jobgate-slurm-apt.log; die "apt-get install failed"; }
  log "installed"
}

prepare_users_and_keys() {
  id slurmrestd >/dev/null 2>&1 || useradd -r -M -s /usr/sbin/nologin -d /nonexistent slurmrestd
  id "$SLURM_TEST_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$SLURM_TEST_USER"
  install -d -m 0755 -o slurm -g slurm "$RUN" "$LOGD" "$CTLD_STATE"
  install -d -m 0755 -o root -g root "$SLURMD_SPOOL" "$ETC"
  install -d -m 0755 -o munge -g munge /run/munge
  install -d -m 0700 -o munge -g munge /etc/munge /var/log/munge
  install -d -m 0711 -o munge -g munge /var/lib/munge
  install -d -m 0755 -o slurmrestd -g slurmrestd "$REST_RUN" "$REST_LOG"
  if [ ! -s /etc/munge/munge.key ]; then
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; fi
  fi
  chown munge:munge /etc/munge/munge.key; chmod 0600 /etc/munge/munge.key
  [ -s "$JWT_KEY" ] || dd if=/dev/urandom of="$JWT_KEY" bs=32 count=1 status=none
  chown slurm:slurm "$JWT_KEY"; chmod 0600 "$JWT_KEY"
  [ -s "$DB_PASS_FILE" ] || head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > "$DB_PASS_FILE"
  chmod 0600 "$DB_PASS_FILE"
}

start_munge() {
  if alive /run/munge/munged.pid /usr/sbin/munged; then return 0; fi
  rm -f /run/munge/munged.pid
  # munged refuses root without --force: run it as its own user.
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  wait_for "$TIMEOUT" bash -c 'munge -n | unmunge' || die "munged did not come up"
  log "munged started"
}

cgroup_v1_usable() {
  [ -d /sys/fs/cgroup/memory ] && [ -d /sys/fs/cgroup/freezer ] && [ -d /sys/fs/cgroup/cpuset ] || return 1
  local probe=/sys/fs/cgroup/memory/slurm_probe.$$
  mkdir "$probe" 2>/dev/null || return 1
  rmdir "$probe"
}

# Sets CHANGED_SLURM and CHANGED_DBD.
write_config() {
  local node cpus boards sockets cores threads realmem mem proc_conf acct_conf db_pass
  node=$(node_name)
  read -r cpus boards sockets cores threads realmem < <(/usr/sbin/slurmd -C | head -1 | sed -E \
    's/.*CPUs=([0-9]+) Boards=([0-9]+) SocketsPerBoard=([0-9]+) CoresPerSocket=([0-9]+) ThreadsPerCore=([0-9]+) RealMemory=([0-9]+).*/\1 \2 \3 \4 \5 \6/')
  # Leave ~8% unconfigured: a RealMemory above what slurmd finds drains the node.
  mem=$(( realmem * 92 / 100 ))
  case "$SLURM_PROCTRACK" in
    auto) if cgroup_v1_usable; then SLURM_PROCTRACK=cgroup; else SLURM_PROCTRACK=linuxproc; fi ;;
    cgroup|linuxproc) ;;
    *) die "SLURM_PROCTRACK must be auto, cgroup or linuxproc" ;;
  esac
  if [ "$SLURM_PROCTRACK" = cgroup ]; then
    proc_conf="ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup,task/affinity
JobAcctGatherType=jobacct_gather/cgroup"
  else
    # Without cgroups memory is only enforced by polling (OverMemoryKill).
    proc_conf="ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherParams=OverMemoryKill"
  fi
  if [ "$SLURM_ACCOUNTING" = dbd ]; then
    acct_conf="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStoreFlags=job_script,job_env,job_comment"
  else
    acct_conf="AccountingStorageType=accounting_storage/none"
  fi
  CHANGED_SLURM=0; CHANGED_DBD=0
  write_if_changed $ETC/slurm.conf 0644 root:root <<EOF && CHANGED_SLURM=1 || true
# written by jobgate's scripts/slurm.sh: a single-node test cluster
ClusterName=test
SlurmctldHost=${node}(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY
# a requeued job waits cred_expire seconds before it may start again (default 120)
AuthInfo=cred_expire=10
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$CTLD_STATE
SlurmdSpoolDir=$SLURMD_SPOOL
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGD/slurmctld.log
SlurmdLogFile=$LOGD/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
MpiDefault=none
SwitchType=switch/none
$proc_conf
JobAcctGatherFrequency=task=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a default every job is given all of the node's memory: one job at a time
DefMemPerCPU=256
$acct_conf
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGD/jobcomp.log
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1,sched_min_interval=0,default_queue_depth=1000
# 22.05 reads kill_invalid_depend here; in SchedulerParameters it is silently ignored
DependencyParameters=kill_invalid_depend
MinJobAge=$SLURM_MINJOBAGE
ReturnToService=2
KillWait=5
InactiveLimit=0
MessageTimeout=10
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus Boards=$boards SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=01:00:00 DefaultTime=00:10:00 OverSubscribe=$SLURM_OVERSUBSCRIBE State=UP
PartitionName=long Nodes=ALL Default=NO MaxTime=7-00:00:00 DefaultTime=01:00:00 OverSubscribe=NO State=UP
EOF
  write_if_changed $ETC/cgroup.conf 0644 root:root <<'EOF' && CHANGED_SLURM=1 || true
CgroupPlugin=autodetect
CgroupMountpoint=/sys/fs/cgroup
ConstrainCores=yes
ConstrainRAMSpace=yes
ConstrainSwapSpace=no
# cgroup v2 hosts without systemd (22.05 supports it "for testing only")
IgnoreSystemd=yes
EOF
  if [ "$SLURM_ACCOUNTING" = dbd ]; then
    db_pass=$(cat "$DB_PASS_FILE")
    write_if_changed $ETC/slurmdbd.conf 0600 slurm:slurm <<EOF && CHANGED_DBD=1 || true
AuthType=auth/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=slurm
DebugLevel=info
LogFile=$LOGD/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$db_pass
EOF
  fi
  log "config: node=$node cpus=$cpus memory=$mem proctrack=$SLURM_PROCTRACK accounting=$SLURM_ACCOUNTING (changed: slurm=$CHANGED_SLURM dbd=$CHANGED_DBD)"
}

start_accounting() {
  local db_pass
  db_pass=$(cat "$DB_PASS_FILE")
  if ! mariadb_up; then
    install -d -m 0755 -o mysql -g root /run/mysqld
    install -d -m 0750 -o mysql -g adm /var/log/mysql
    rm -f /run/mysqld/mysqld.pid
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    start-stop-daemon --start --quiet --background --pidfile /run/mysqld/mysqld.pid \
      --exec /usr/sbin/mariadbd -- --user=mysql --pid-file=/run/mysqld/mysqld.pid \
      --bind-address=127.0.0.1 --innodb-lock-wait-timeout=900 --innodb-buffer-pool-size=256M \
      --log-error=/var/log/mysql/error.log
    wait_for "$TIMEOUT" mariadb_up || die "MariaDB did not come up"
    wait_for 10 test -s /run/mysqld/mysqld.pid || true
    touch "$OUR_MARIADB"
    log "mariadbd started"
  fi
  mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$db_pass';
    ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$db_pass';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  if [ "$CHANGED_DBD" = 1 ]; then stop_pid slurmdbd $RUN/slurmdbd.pid /usr/sbin/slurmdbd 20; fi
  if ! alive $RUN/slurmdbd.pid /usr/sbin/slurmdbd; then
    rm -f $RUN/slurmdbd.pid
    /usr/sbin/slurmdbd
    wait_for "$TIMEOUT" bash -c "exec 3<>/dev/tcp/127.0.0.1/6819" \
      || { tail -5 $LOGD/slurmdbd.log; die "slurmdbd did not come up"; }
    log "slurmdbd started"
  fi
}

start_slurm() {
  if [ "$CHANGED_SLURM" = 1 ]; then
    # A changed config (auth plugins above all) needs fresh daemons.
    stop_rest
    stop_pid slurmd $RUN/slurmd.pid /usr/sbin/slurmd 20
    stop_pid slurmctld $RUN/slurmctld.pid /usr/sbin/slurmctld 30
  fi
  if ! alive $RUN/slurmctld.pid /usr/sbin/slurmctld; then
    rm -f $RUN/slurmctld.pid
    /usr/sbin/slurmctld   # daemonizes, becomes SlurmUser, writes its pid file
    wait_for "$TIMEOUT" ctld_up || { tail -20 $LOGD/slurmctld.log; die "slurmctld did not come up"; }
    log "slurmctld started"
  fi
  if ! alive $RUN/slurmd.pid /usr/sbin/slurmd; then
    rm -f $RUN/slurmd.pid
    /usr/sbin/slurmd
    wait_for "$TIMEOUT" test -s $RUN/slurmd.pid || { tail -20 $LOGD/slurmd.log; die "slurmd did not start"; }
    log "slurmd started"
  fi
  if ! wait_for 15 node_ok; then
    # left DOWN or DRAINED by an unclean stop
    scontrol update NodeName="$(node_name)" State=RESUME 2>/dev/null || true
    wait_for "$TIMEOUT" node_ok || { sinfo -N -l; die "node $(node_name) is not usable"; }
  fi
}

# slurmrestd runs under a loop that starts it again one second after it ends, as
# systemd's Restart= would, and logs each end with its exit status.
start_rest() {
  local oas
  if alive $REST_RUN/slurmrestd.pid /usr/sbin/slurmrestd; then return 0; fi
  if ! alive $REST_RUN/supervisor.pid /usr/bin/bash; then
    rm -f $REST_RUN/slurmrestd.pid $REST_RUN/supervisor.pid
    # Not as root nor SlurmUser (refused); SLURM_JWT=daemon or every token is rejected;
    # openapi/dbv0.0.38 is fatal without slurmdbd.
    oas=openapi/v0.0.38; [ "$SLURM_ACCOUNTING" = dbd ] && oas=$oas,openapi/dbv0.0.38
    # From /: slurmrestd calls getcwd() at each job submit and exits (255) when
    # the directory it was started from is gone (a deleted checkout).
    cat > $REST_RUN/supervise.sh <<EOF
cd /
echo \$\$ > $REST_RUN/supervisor.pid
while :; do
  /usr/sbin/slurmrestd -a rest_auth/jwt -s $oas 127.0.0.1:$SLURM_REST_PORT &
  echo \$! > $REST_RUN/slurmrestd.pid
  wait \$!; rc=\$?
  echo "[\$(date +%FT%T)] slurmrestd exited with status \$rc: starting it again in 1 s"
  sleep 1
done
EOF
    chmod 0644 $REST_RUN/supervise.sh
    runuser -u slurmrestd -- env SLURM_JWT=daemon bash -c \
      "exec setsid bash $REST_RUN/supervise.sh >> $REST_LOG/slurmrestd.log 2>&1 < /dev/null &"
  fi
  # Unauthenticated -> 401 once it listens.
  rest_up() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SLURM_REST_PORT/openapi/v3")" = 401 ] \
              && alive $REST_RUN/slurmrestd.pid /usr/sbin/slurmrestd; }
  wait_for "$TIMEOUT" rest_up || { tail -5 $REST_LOG/slurmrestd.log; die "slurmrestd did not come up"; }
  log "slurmrestd started on 127.0.0.1:$SLURM_REST_PORT"
}

# The loop first, so that it does not start slurmrestd again.
stop_rest() {
  stop_pid "slurmrestd's loop" $REST_RUN/supervisor.pid /usr/bin/bash 5
  stop_pid slurmrestd $REST_RUN/slurmrestd.pid /usr/sbin/slurmrestd 5
}

cmd_up() {
  [ "$(id -u)" = 0 ] || die "must run as root"
  install_packages
  prepare_users_and_keys
  start_munge
  write_config
  [ "$SLURM_ACCOUNTING" = dbd ] && start_accounting
  start_slurm
  local ready; ready=$(elapsed)
  [ "$SLURM_REST" = 1 ] && start_rest
  cat > $RUN/env <<EOF
# connection details of the test cluster (written by scripts/slurm.sh)
SLURM_CLUSTER=test
SLURM_NODE=$(node_name)
SLURM_ACCOUNTING=$SLURM_ACCOUNTING
SLURMRESTD_URL=http://127.0.0.1:$SLURM_REST_PORT
SLURM_TEST_USER=$SLURM_TEST_USER
EOF
  log "up: sbatch ready after ${ready}s, all done after $(elapsed)s"
}

cmd_down() {
  local keep_jobs=0 purge=0 a jobs left stepd d i
  for a in "$@"; do
    case "$a" in
      --keep-jobs) keep_jobs=1 ;;
      --purge) purge=1 ;;
      *) die "unknown option $a (use --keep-jobs or --purge)" ;;
    esac
  done
  [ "$(id -u)" = 0 ] || die "must run as root"
  if [ "$keep_jobs" = 0 ] && alive $RUN/slurmctld.pid /usr/sbin/slurmctld; then
    jobs=$(squeue -h -t PD,R,S,CG,CF,RQ,RS,SE -o %A 2>/dev/null | sort -u)
    if [ -n "$jobs" ]; then
      log "cancelling $(echo "$jobs" | wc -l) job(s)"
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      for i in $(seq 1 150); do
        [ -z "$(squeue -h -t R,S,CG,CF -o %A 2>/dev/null)" ] && break
        sleep 0.1
      done
    fi
  fi
  stop_rest
  stop_pid slurmd $RUN/slurmd.pid /usr/sbin/slurmd 20
  stop_pid slurmctld $RUN/slurmctld.pid /usr/sbin/slurmctld 30
  if [ "$purge" = 1 ]; then
    if mariadb_up; then
      stop_pid slurmdbd $RUN/slurmdbd.pid /usr/sbin/slurmdbd 20
      # Job ids restart at 1: old rows with the same ids would confuse sacct.
      mariadb -e "DROP DATABASE IF EXISTS slurm_acct_db" && log "accounting database dropped"
    elif [ -d /var/lib/mysql/slurm_acct_db ]; then
      log "WARNING: MariaDB is not running: accounting database NOT dropped"
    fi
  fi
  stop_pid slurmdbd $RUN/slurmdbd.pid /usr/sbin/slurmdbd 20
  if [ -e "$OUR_MARIADB" ]; then
    stop_pid mariadbd /run/mysqld/mysqld.pid /usr/sbin/mariadbd 60
    rm -f "$OUR_MARIADB"
  fi
  stop_pid munged /run/munge/munged.pid /usr/sbin/munged 10
  # Job steps outlive slurmd. After the scancel above there should be none:
  # report them, never kill by name.
  left=""; stepd=$(readlink -f /usr/sbin/slurmstepd 2>/dev/null || echo none)
  for d in /proc/[0-9]*; do
    [ "$(readlink "$d/exe" 2>/dev/null)" = "$stepd" ] && left="$left ${d#/proc/}"
  done
  [ -n "$left" ] && log "slurmstepd still running (pids:$left): their jobs go on"
  if [ "$purge" = 1 ]; then
    rm -rf "${CTLD_STATE:?}"/* "${SLURMD_SPOOL:?}"/*
    for d in $LOGD/*.log $REST_LOG/*.log; do [ -e "$d" ] && : > "$d"; done
    log "state and logs purged"
  fi
  log "down after $(elapsed)s"
}

cmd_status() {
  command -v scontrol >/dev/null 2>&1 && ctld_up && node_ok
}

# One `up` or `down` at a time: two at once (test workers starting the cluster
# together) would each start a slurmrestd, and the second would hold its port.
# flock -o: the daemons started below must not inherit the lock.
if [ -z "${SLURM_SH_LOCKED:-}" ] && { [ "${1:-}" = up ] || [ "${1:-}" = down ]; }; then
  mkdir -p $RUN
  SLURM_SH_LOCKED=1 exec flock -o $RUN/slurm.sh.lock bash "$0" "$@"
fi

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  status) cmd_status ;;
  *) echo "usage: $0 up | down [--keep-jobs] [--purge] | status" >&2; exit 2 ;;
esac

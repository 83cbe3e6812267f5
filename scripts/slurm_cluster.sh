#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for development and CI (docs/deployment.md, "Slurm").
#
#   scripts/slurm_cluster.sh [--install] start    # write the config, start munged, slurmctld, slurmd; wait for idle
#   scripts/slurm_cluster.sh stop                 # stop the three daemons (the config stays)
#   scripts/slurm_cluster.sh status               # daemons and `sinfo`; exit 0 only if the node is usable
#
# Needs root (the daemons run as root: SlurmUser=root) and Debian's slurm-wlm and munge packages;
# `--install` installs them with apt-get first, nothing is installed otherwise. Idempotent: `start`
# on a running cluster with an unchanged config does nothing; a changed config restarts the daemons.
#
# One node named after `hostname -s` with CPUs = nproc and RealMemory = MemTotal minus a margin, one
# partition (Default=YES, $UAL_SLURM_PARTITION or `debug`), processes tracked without cgroups
# (proctrack/linuxproc, task/none), cores as the consumable (select/cons_tres, CR_Core: two 1-CPU
# jobs run at once on two cores). No accounting daemon: finished jobs stay visible to `scontrol show
# job` for MinJobAge seconds and are appended to the jobcomp/filetxt record ($JOBCOMP below).
# Environment: UAL_SLURM_PARTITION (partition name), UAL_SLURM_START_TIMEOUT_S (default 60).
set -euo pipefail

PARTITION=${UAL_SLURM_PARTITION:-debug}
TIMEOUT_S=${UAL_SLURM_START_TIMEOUT_S:-60}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
LOG_DIR=/var/log/slurm
CTLD_SPOOL=/var/spool/slurmctld
SLURMD_SPOOL=/var/spool/slurmd
JOBCOMP=$LOG_DIR/jobcomp.log
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_KEY=/etc/munge/munge.key
MUNGE_RUN=/run/munge
MUNGE_PID=$MUNGE_RUN/munged.pid

say() { echo "[slurm] $*"; }
die() {
  echo "[slurm] error: $*" >&2
  exit 1
}

usage() {
  echo "usage: $0 [--install] start|stop|status" >&2
  exit 2
}

want_install=0
action=
for arg in "$@"; do
  case $arg in
    --install) want_install=1 ;;
    start | stop | status) action=$arg ;;
    *) usage ;;
  esac
done
[ -n "$action" ] || usage

# A daemon is running when its pid file names a live process with the expected command name.
running() { # name pidfile
  local pid
  [ -f "$2" ] || return 1
  pid=$(cat "$2" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$1" ]
}

stop_daemon() { # name pidfile
  local pid i
  if ! running "$1" "$2"; then
    return 0
  fi
  pid=$(cat "$2")
  kill "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    running "$1" "$2" || break
    sleep 0.2
  done
  if running "$1" "$2"; then
    say "$1 (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$2"
  say "stopped $1"
}

do_stop() {
  [ "$(id -u)" = 0 ] || die "must run as root (the daemons run as root)"
  stop_daemon slurmd "$SLURMD_PID"
  stop_daemon slurmctld "$CTLD_PID"
  stop_daemon munged "$MUNGE_PID"
}

node_state() { sinfo -h -N -n "$(hostname -s)" -o '%t' 2>/dev/null | head -n1; }

do_status() {
  local d ok=0
  for d in "munged:$MUNGE_PID" "slurmctld:$CTLD_PID" "slurmd:$SLURMD_PID"; do
    if running "${d%%:*}" "${d#*:}"; then
      say "${d%%:*} running (pid $(cat "${d#*:}"))"
    else
      say "${d%%:*} not running"
      ok=1
    fi
  done
  if command -v sinfo >/dev/null && [ -f "$CONF" ]; then
    sinfo 2>&1 || ok=1
    case $(node_state) in
      idle* | mix* | alloc*) ;;
      *) ok=1 ;;
    esac
  else
    say "sinfo or $CONF missing"
    ok=1
  fi
  return $ok
}

write_conf() { # -> path of the rendered config
  local host cpus mem_mb margin real tmp
  host=$(hostname -s)
  cpus=$(nproc)
  mem_mb=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
  # slurmd drains a node whose memory is below RealMemory: leave 5% (at least 256 MB) spare
  margin=$((mem_mb / 20))
  [ "$margin" -ge 256 ] || margin=256
  real=$((mem_mb - margin))
  [ "$real" -ge 1 ] || real=1
  tmp=$(mktemp)
  cat >"$tmp" <<EOF
# Written by ual-dagster's scripts/slurm_cluster.sh: a single-node cluster on $host.
ClusterName=ual
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=$CTLD_SPOOL
SlurmdSpoolDir=$SLURMD_SPOOL
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
# No slurmdbd: sacct has nothing to read. scontrol keeps a finished job for MinJobAge seconds,
# the jobcomp record keeps every finished job's final state.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP
MinJobAge=86400
# seconds between SIGTERM and SIGKILL when a job is cancelled or runs out of time
KillWait=10
InactiveLimit=0
SlurmdTimeout=300
NodeName=$host CPUs=$cpus RealMemory=$real State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  echo "$tmp"
}

do_start() {
  [ "$(id -u)" = 0 ] || die "must run as root (the daemons run as root)"
  if [ "$want_install" = 1 ]; then
    say "installing slurm-wlm and munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
  fi
  local tool
  for tool in munged slurmctld slurmd sinfo sbatch; do
    command -v "$tool" >/dev/null || die "$tool not found: install Debian's slurm-wlm and munge (or pass --install)"
  done

  # munge: a shared key (kept when there is one: on a real cluster every node has the same key)
  install -d -o munge -g munge -m 0755 "$MUNGE_RUN"
  install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge /var/lib/munge
  if [ ! -s "$MUNGE_KEY" ]; then
    say "writing a new munge key $MUNGE_KEY"
    (umask 077 && head -c 1024 /dev/urandom >"$MUNGE_KEY")
  fi
  chown munge:munge "$MUNGE_KEY"
  chmod 0400 "$MUNGE_KEY"

  mkdir -p "$CONF_DIR" "$LOG_DIR" "$CTLD_SPOOL" "$SLURMD_SPOOL"
  local new changed=0
  new=$(write_conf)
  if ! cmp -s "$new" "$CONF"; then
    changed=1
    install -m 0644 "$new" "$CONF"
    say "wrote $CONF"
  fi
  rm -f "$new"
  if [ "$changed" = 1 ] && { running slurmctld "$CTLD_PID" || running slurmd "$SLURMD_PID"; }; then
    say "config changed: restarting slurmctld and slurmd"
    stop_daemon slurmd "$SLURMD_PID"
    stop_daemon slurmctld "$CTLD_PID"
  fi

  if ! running munged "$MUNGE_PID"; then
    # --force: munged refuses to start when its log file's owner looks unsafe (it warns only)
    munged --force --pid-file="$MUNGE_PID" 2>/dev/null || die "munged did not start (see /var/log/munge/munged.log)"
    say "started munged"
  fi
  local i
  for i in $(seq 1 25); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.2
  done
  munge -n 2>/dev/null | unmunge >/dev/null 2>&1 || die "munge does not work (munge -n | unmunge fails; see /var/log/munge/munged.log)"

  if ! running slurmctld "$CTLD_PID"; then
    slurmctld || die "slurmctld did not start (see $LOG_DIR/slurmctld.log)"
    say "started slurmctld"
  fi
  if ! running slurmd "$SLURMD_PID"; then
    slurmd || die "slurmd did not start (see $LOG_DIR/slurmd.log)"
    say "started slurmd"
  fi

  local state deadline=$((SECONDS + TIMEOUT_S))
  while :; do
    state=$(node_state || true)
    case $state in
      idle | mix | alloc | comp*)
        say "node $(hostname -s) is $state; partition $PARTITION ($(nproc) CPUs)"
        return 0
        ;;
      down* | drain* | drng*)
        # e.g. left down by an earlier unclean stop: ReturnToService=2 needs slurmd to register again
        scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true
        ;;
    esac
    if [ "$SECONDS" -ge "$deadline" ]; then
      running slurmctld "$CTLD_PID" || say "slurmctld is not running"
      running slurmd "$SLURMD_PID" || say "slurmd is not running"
      tail -n 5 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 2>/dev/null || true
      die "node $(hostname -s) not idle after ${TIMEOUT_S} s (state: '${state:-no answer from slurmctld}'); see $LOG_DIR"
    fi
    sleep 0.5
  done
}

case $action in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
esac

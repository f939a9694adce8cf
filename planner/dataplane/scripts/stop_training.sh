#!/usr/bin/env bash
# trainctl: stop a training job gracefully: SIGTERM, up to GRACE_SECONDS for it to exit, then SIGKILL.
set -euo pipefail
# The job: the live pid of its pid file and the processes matching its patterns (never this
# script, its parents or other trainctl scripts). A pid file older than its process names a
# reused pid: that process is left alone.
# >>> params
PID_FILE=''
PATTERNS=()
GRACE_SECONDS=''
# <<< params
# >>> lib
# shellcheck source=lib.sh
. "${BASH_SOURCE[0]%/*}/lib.sh"
# <<< lib

[[ $GRACE_SECONDS =~ ^[0-9]+$ ]] || fail "grace_seconds is not a whole number of seconds" "$GRACE_SECONDS"
command -v pgrep >/dev/null 2>&1 || fail "pgrep is not installed; cannot find the training job"

ppid_of() {  # ppid_of VAR PID: the parent pid ("" when gone); comm may hold spaces and ')'
  local stat="" ppid=""
  stat=$(cat "/proc/$2/stat" 2>/dev/null || true)
  if [ -n "$stat" ]; then
    read -r _ ppid _ <<<"${stat##*) }"
  fi
  [[ $ppid =~ ^[0-9]+$ ]] || ppid=""
  printf -v "$1" '%s' "$ppid"
}

declare -A SKIP=()
p=$$
while [ -n "$p" ] && [ "$p" -gt 1 ]; do
  SKIP[$p]=1
  ppid_of p "$p"
done

is_ours() {  # is_ours PID: this script, an ancestor, a descendant or a trainctl script
  local q=$1 n=0
  [ -n "${SKIP[$q]:-}" ] && return 0
  if tr '\0' ' ' <"/proc/$q/cmdline" 2>/dev/null | grep -q TRAINCTL_STATUS; then return 0; fi
  while [ -n "$q" ] && [ "$q" -gt 1 ] && [ "$n" -lt 64 ]; do
    [ "$q" = "$$" ] && return 0
    ppid_of q "$q"
    n=$((n + 1))
  done
  return 1
}

alive() {  # alive PID: the process exists and is not a zombie (exited, not yet reaped)
  local stat="" state=""
  stat=$(cat "/proc/$1/stat" 2>/dev/null || true)
  [ -n "$stat" ] || return 1
  read -r state _ <<<"${stat##*) }"
  [ "$state" != Z ] && [ "$state" != X ]
}

started_at() {  # started_at VAR PID: the process start time, seconds since the epoch
  local stat="" rest="" btime="" hz=""
  stat=$(cat "/proc/$2/stat" 2>/dev/null || true)
  rest=${stat##*) }
  local -a f
  read -r -a f <<<"$rest"
  btime=$(awk '/^btime/ {print $2}' /proc/stat 2>/dev/null || true)
  hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
  if [[ ${f[19]:-} =~ ^[0-9]+$ ]] && [[ $btime =~ ^[0-9]+$ ]] && [[ $hz =~ ^[0-9]+$ ]]; then
    printf -v "$1" '%s' "$((btime + f[19] / hz))"
  else
    printf -v "$1" '%s' ""
  fi
}

declare -A TARGET=()
NOTES=()

if [ -n "$PID_FILE" ]; then
  check_abs_path "pid file" "$PID_FILE"
  host_path PID_PATH "$PID_FILE"
  if [ -e "$PID_PATH" ]; then
    pid_text=""
    read -r pid_text <"$PID_PATH" 2>/dev/null || true
    pid_text=${pid_text//[[:space:]]/}
    if ! [[ $pid_text =~ ^[0-9]+$ ]]; then
      NOTES+=("pid file $PID_FILE does not hold a pid")
    elif alive "$pid_text" && ! is_ours "$pid_text"; then
      started_at since "$pid_text"
      written=$(stat -c %Y "$PID_PATH" 2>/dev/null || echo "")
      if [ -n "$since" ] && [ -n "$written" ] && [ "$since" -gt $((written + 1)) ]; then
        NOTES+=("pid $pid_text started after $PID_FILE was written: a reused pid, left alone")
      else
        TARGET[$pid_text]=1
      fi
    fi
  fi
fi

for pattern in ${PATTERNS[@]+"${PATTERNS[@]}"}; do
  rc=0
  out=$(pgrep -f -- "$pattern") || rc=$?
  case $rc in
    0) ;;
    1) continue ;;
    *) fail "pgrep failed (exit code $rc) for pattern; cannot find the training job" "$pattern" ;;
  esac
  while read -r pid; do
    [ -n "$pid" ] || continue
    if is_ours "$pid"; then continue; fi
    alive "$pid" && TARGET[$pid]=1
  done <<<"$out"
done

json_pids() {  # json_pids VAR PID...: a JSON array of pids
  local out="[" q var=$1
  shift
  for q in "$@"; do
    [ "$out" = "[" ] || out+=","
    out+=$q
  done
  printf -v "$var" '%s' "$out]"
}

SIGNALLED=()
for pid in "${!TARGET[@]}"; do
  if kill -TERM "$pid" 2>/dev/null; then SIGNALLED+=("$pid"); fi
done

deadline=$((SECONDS + GRACE_SECONDS))
remaining() {  # the signalled pids still alive, in LEFT
  LEFT=()
  local q
  for q in ${SIGNALLED[@]+"${SIGNALLED[@]}"}; do
    if alive "$q"; then LEFT+=("$q"); fi
  done
}
remaining
while [ "${#LEFT[@]}" -gt 0 ] && [ "$SECONDS" -lt "$deadline" ]; do
  sleep 0.2
  remaining
done

KILLED=()
for pid in ${LEFT[@]+"${LEFT[@]}"}; do
  if kill -KILL "$pid" 2>/dev/null; then KILLED+=("$pid"); fi
done
if [ "${#KILLED[@]}" -gt 0 ]; then
  kill_deadline=$((SECONDS + 10))
  remaining
  while [ "${#LEFT[@]}" -gt 0 ] && [ "$SECONDS" -lt "$kill_deadline" ]; do
    sleep 0.2
    remaining
  done
  [ "${#LEFT[@]}" -eq 0 ] || fail "the training job did not end after SIGKILL" "${LEFT[*]}"
fi

json_pids SIG_JSON ${SIGNALLED[@]+"${SIGNALLED[@]}"}
json_pids KILL_JSON ${KILLED[@]+"${KILLED[@]}"}
field_b stopped true
field_n grace_seconds "$GRACE_SECONDS"
field_raw signalled "$SIG_JSON"
field_raw killed "$KILL_JSON"
if [ "${#SIGNALLED[@]}" -eq 0 ]; then
  field_s result "no training job found to stop"
elif [ "${#KILLED[@]}" -eq 0 ]; then
  field_s result "the training job exited on SIGTERM"
else
  field_s result "the training job ignored SIGTERM for ${GRACE_SECONDS}s and was killed"
fi
field_s notes "${NOTES[*]:-}"
finish_ok

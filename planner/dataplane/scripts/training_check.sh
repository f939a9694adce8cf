#!/usr/bin/env bash
# trainctl: is a training job running? A live pid file or a process matching a pattern says
# yes. Any error reports "failed", which trainctl treats as "cannot tell" (and blocks).
set -euo pipefail
# >>> params
PID_FILE=''
PATTERNS=()
# <<< params
# >>> lib
# shellcheck source=lib.sh
. "${BASH_SOURCE[0]%/*}/lib.sh"
# <<< lib

command -v pgrep >/dev/null 2>&1 || fail "pgrep is not installed; cannot tell whether training runs"

# This script, its parents and its children never count (their command line may hold the
# patterns), nor do other trainctl scripts.
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

is_ours() {  # is_ours PID: the pid is this script, an ancestor, a descendant or a trainctl script
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

cmdline_of() {  # cmdline_of VAR PID
  local c
  c=$(tr '\0' ' ' <"/proc/$2/cmdline" 2>/dev/null || true)
  printf -v "$1" '%s' "${c% }"
}

RUNNING=false
EVIDENCE=""
PIDS=()

if [ -n "$PID_FILE" ]; then
  check_abs_path "pid file" "$PID_FILE"
  host_path PID_PATH "$PID_FILE"
  if [ -e "$PID_PATH" ]; then
    [ -r "$PID_PATH" ] || fail "pid file $PID_FILE is not readable; cannot tell whether training runs"
    read -r pid_text <"$PID_PATH" || true
    pid_text=${pid_text:-}
    pid_text=${pid_text//[[:space:]]/}
    [[ $pid_text =~ ^[0-9]+$ ]] ||
      fail "pid file $PID_FILE does not hold a pid; cannot tell whether training runs" "$pid_text"
    if kill -0 "$pid_text" 2>/dev/null || [ -d "/proc/$pid_text" ]; then
      RUNNING=true
      cmdline_of CMDLINE "$pid_text"
      EVIDENCE="pid $pid_text from $PID_FILE is alive: $CMDLINE"
      PIDS+=("$pid_text")
    fi
  fi
fi

for pattern in ${PATTERNS[@]+"${PATTERNS[@]}"}; do
  [ "$RUNNING" = true ] && break
  rc=0
  out=$(pgrep -f -- "$pattern") || rc=$?
  case $rc in
    0) ;;
    1) continue ;;
    *) fail "pgrep failed (exit code $rc) for pattern; cannot tell whether training runs" "$pattern" ;;
  esac
  while read -r pid; do
    [ -n "$pid" ] || continue
    if is_ours "$pid"; then continue; fi
    [ -d "/proc/$pid" ] || continue
    RUNNING=true
    PIDS+=("$pid")
    if [ -z "$EVIDENCE" ]; then
      cmdline_of CMDLINE "$pid"
      EVIDENCE="process $pid matches '$pattern': $CMDLINE"
    fi
  done <<<"$out"
done

pids_json="["
for pid in ${PIDS[@]+"${PIDS[@]}"}; do
  [ "$pids_json" = "[" ] || pids_json+=","
  pids_json+=$pid
done
pids_json+="]"

field_b running "$RUNNING"
field_s evidence "${EVIDENCE:-no live pid file and no process matches}"
field_raw pids "$pids_json"
finish_ok

#!/usr/bin/env bash
# trainctl lifetime watcher: on the instance, stop or terminate it at DEADLINE, or once no
# training job has run and the GPUs stayed under 5 % for IDLE_SECONDS; checkpoints first.
set -euo pipefail
# >>> params
INSTANCE_ID=''
DEADLINE=''
IDLE_SECONDS=''
ACTION=''
CKPT_PATH=''
SYNC_TO=''
PID_FILE=''
PATTERNS=()
INTERVAL=''
# <<< params
# >>> lib
# shellcheck source=lib.sh
. "${BASH_SOURCE[0]%/*}/lib.sh"
# <<< lib
trap - ERR
set +e

say() { printf '%s lifetime-watcher: %s\n' "$(date -u +%FT%TZ)" "$*"; }

emulated() { [ -n "${TRAINCTL_SANDBOX:-}" ]; }

aws_ec2() {
  local -a cmd=(aws)
  if [ -n "${AWS_ENDPOINT_URL:-}" ]; then cmd+=(--endpoint-url "$AWS_ENDPOINT_URL"); fi
  "${cmd[@]}" ec2 "$@"
}

still_running() {  # on the emulator: stop watching once the instance (or emulator) is gone
  emulated || return 0
  local state
  state=$(aws_ec2 describe-instances --instance-ids "$INSTANCE_ID" \
    --query 'Reservations[0].Instances[0].State.Name' --output text 2>/dev/null) || return 1
  [ "$state" = running ] || [ "$state" = pending ]
}

job_running() {
  local pid pattern
  if [ -n "$PID_FILE" ]; then
    host_path PF "$PID_FILE"
    if [ -s "$PF" ] && read -r pid <"$PF" && [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
      return 0
    fi
  fi
  for pattern in ${PATTERNS[@]+"${PATTERNS[@]}"}; do
    if pgrep -f -- "$pattern" >/dev/null 2>&1; then return 0; fi
  done
  return 1
}

gpu_busy() {  # any GPU at 5 % or more; no nvidia-smi: no GPU to keep it busy
  command -v nvidia-smi >/dev/null 2>&1 || return 1
  local util
  while read -r util; do
    [[ $util =~ ^[0-9]+$ ]] && [ "$util" -ge 5 ] && return 0
  done < <(nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits 2>/dev/null)
  return 1
}

save_checkpoints() {
  [ -n "$SYNC_TO" ] && [ -n "$CKPT_PATH" ] || return 0
  host_path CKDIR "$CKPT_PATH"
  [ -d "$CKDIR/" ] || return 0
  # a subshell: a failed sync must not end the watcher before it acts
  if (s3_sync "$CKDIR" "$SYNC_TO" "$TRAINCTL_TMP/ckpt.log" "*.trainctl-spot-notice"); then
    say "checkpoints synced to $SYNC_TO"
  else
    say "checkpoint sync failed; acting anyway: $(log_tail "$TRAINCTL_TMP/ckpt.log")"
  fi
}

act() {
  say "$1: ${ACTION} $INSTANCE_ID"
  save_checkpoints
  if emulated; then       # the emulator's API, never this machine
    if [ "$ACTION" = terminate ]; then
      aws_ec2 terminate-instances --instance-ids "$INSTANCE_ID" >/dev/null
    else
      aws_ec2 stop-instances --instance-ids "$INSTANCE_ID" >/dev/null
    fi
  else                    # launched with the matching shutdown behaviour
    shutdown -h now "trainctl: $1"
  fi
  exit 0
}

case $ACTION in stop | terminate) ;; *) say "bad action $ACTION"; exit 2 ;; esac
idle_since=""
say "watching $INSTANCE_ID: deadline ${DEADLINE:-none}, idle ${IDLE_SECONDS:-off} s, then $ACTION"
while true; do
  still_running || { say "$INSTANCE_ID is no longer running; exiting"; exit 0; }
  now=$(date +%s)
  if [ -n "$DEADLINE" ] && [ "$now" -ge "$DEADLINE" ]; then act "max_lifetime reached"; fi
  if [ -n "$IDLE_SECONDS" ]; then
    if job_running || gpu_busy; then
      idle_since=""
    else
      idle_since=${idle_since:-$now}
      if [ $((now - idle_since)) -ge "$IDLE_SECONDS" ]; then
        act "idle for $((now - idle_since)) s (no training job, GPUs under 5 %)"
      fi
    fi
  fi
  sleep "$INTERVAL"
done

#!/usr/bin/env bash
# trainctl: install the spot watcher (spot_watcher.sh, rendered and embedded as base64) as the
# systemd unit trainctl-spot-watcher.service, or start it with nohup where there is no systemd
# (emulated instances). Idempotent: an unchanged, running watcher is left alone.
set -euo pipefail
# >>> params
CKPT_PATH=''
SYNC_TO=''
WATCHER_B64=''
# <<< params
# >>> lib
# shellcheck source=lib.sh
. "${BASH_SOURCE[0]%/*}/lib.sh"
# <<< lib

case $SYNC_TO in s3://?*) ;; *) fail "not an s3:// URI" "$SYNC_TO" ;; esac
check_abs_path "checkpoint path" "$CKPT_PATH"
command -v curl >/dev/null 2>&1 || fail "curl is not installed; the spot watcher needs it"
command -v base64 >/dev/null 2>&1 || fail "base64 is not installed"
if ! command -v s5cmd >/dev/null 2>&1 && ! command -v aws >/dev/null 2>&1; then
  fail "neither s5cmd nor the aws CLI is installed on the instance"
fi

UNIT_NAME=trainctl-spot-watcher.service
host_path BIN /usr/local/lib/trainctl/spot-watcher.sh
mkdir -p -- "${BIN%/*}"
printf '%s' "$WATCHER_B64" | base64 -d >"$TRAINCTL_TMP/watcher"
CHANGED=false
if ! cmp -s -- "$TRAINCTL_TMP/watcher" "$BIN"; then
  install -m 0755 -- "$TRAINCTL_TMP/watcher" "$BIN"
  CHANGED=true
fi

if [ -z "${TRAINCTL_SANDBOX:-}" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  unit=/etc/systemd/system/$UNIT_NAME
  cat >"$TRAINCTL_TMP/unit" <<UNIT
[Unit]
Description=trainctl spot interruption watcher (syncs checkpoints on a notice)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart=$BIN
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
  if ! cmp -s -- "$TRAINCTL_TMP/unit" "$unit"; then
    install -m 0644 -- "$TRAINCTL_TMP/unit" "$unit"
    CHANGED=true
  fi
  log=$TRAINCTL_TMP/systemctl.log
  run_logged "$log" systemctl daemon-reload
  run_logged "$log" systemctl enable "$UNIT_NAME"
  if [ "$CHANGED" = true ]; then
    run_logged "$log" systemctl restart "$UNIT_NAME"
  else
    run_logged "$log" systemctl start "$UNIT_NAME"
  fi
  active=$(systemctl is-active "$UNIT_NAME" || true)
  [ "$active" = active ] || fail "$UNIT_NAME is $active after start" "$(log_tail "$log")"
  field_s mode systemd
  field_s unit "$UNIT_NAME"
elif [ -n "${TRAINCTL_SANDBOX:-}" ] && [ -z "${TRAINCTL_IMDS_URL:-}" ]; then
  # An emulated instance has no metadata service, and polling 169.254.169.254 from the
  # operator's machine would watch the wrong machine (or leave loopback): not started.
  field_s mode none
  field_s reason "emulated instance: no instance metadata service to watch"
else
  host_path PID_PATH /var/run/trainctl/spot-watcher.pid
  host_path LOG_PATH /var/log/trainctl-spot-watcher.log
  mkdir -p -- "${PID_PATH%/*}" "${LOG_PATH%/*}"
  old=""
  if [ -s "$PID_PATH" ]; then read -r old <"$PID_PATH" || true; fi
  alive=false
  if [[ $old =~ ^[0-9]+$ ]] && kill -0 "$old" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$old/cmdline" 2>/dev/null | grep -qF -- "$BIN"; then
    alive=true
  fi
  if [ "$alive" = true ] && [ "$CHANGED" = true ]; then
    kill "$old" 2>/dev/null || true
    alive=false
  fi
  if [ "$alive" = true ]; then
    pid=$old
  else
    launcher=(nohup)
    if command -v setsid >/dev/null 2>&1; then launcher+=(setsid); fi
    "${launcher[@]}" "$BIN" </dev/null >>"$LOG_PATH" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$PID_PATH"
    CHANGED=true
  fi
  kill -0 "$pid" 2>/dev/null || fail "the spot watcher exited right away" "$(log_tail "$LOG_PATH")"
  field_s mode nohup
  field_n pid "$pid"
  field_s log "$LOG_PATH"
fi
field_s watcher "$BIN"
field_b changed "$CHANGED"
finish_ok

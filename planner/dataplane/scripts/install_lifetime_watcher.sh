#!/usr/bin/env bash
# trainctl: start the lifetime watcher (lifetime_watcher.sh, embedded as base64): a systemd
# unit on an instance, or a detached process for an emulated one (it acts through the
# emulator's API). A watcher already running is replaced.
set -euo pipefail
# >>> params
WATCHER_B64=''
# <<< params
# >>> lib
# shellcheck source=lib.sh
. "${BASH_SOURCE[0]%/*}/lib.sh"
# <<< lib

host_path BIN /usr/local/lib/trainctl/lifetime-watcher.sh
mkdir -p -- "${BIN%/*}"
printf '%s' "$WATCHER_B64" | base64 -d >"$TRAINCTL_TMP/watcher"
install -m 0755 -- "$TRAINCTL_TMP/watcher" "$BIN"
UNIT_NAME=trainctl-lifetime-watcher.service
if [ -z "${TRAINCTL_SANDBOX:-}" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  cat >"$TRAINCTL_TMP/unit" <<UNIT
[Unit]
Description=trainctl lifetime and idle limits (stops or terminates this instance)

[Service]
Type=simple
ExecStart=$BIN
Restart=on-failure
RestartSec=10

[Install]
WantedBy=multi-user.target
UNIT
  install -m 0644 -- "$TRAINCTL_TMP/unit" "/etc/systemd/system/$UNIT_NAME"
  log=$TRAINCTL_TMP/systemctl.log
  run_logged "$log" systemctl daemon-reload
  run_logged "$log" systemctl enable "$UNIT_NAME"
  run_logged "$log" systemctl restart "$UNIT_NAME"
  field_s mode systemd
else
  host_path PID_PATH /var/run/trainctl/lifetime-watcher.pid
  host_path LOG_PATH /var/log/trainctl-lifetime-watcher.log
  mkdir -p -- "${PID_PATH%/*}" "${LOG_PATH%/*}"
  if [ -s "$PID_PATH" ] && read -r old <"$PID_PATH" && [[ $old =~ ^[0-9]+$ ]] &&
    tr '\0' ' ' <"/proc/$old/cmdline" 2>/dev/null | grep -qF -- "$BIN"; then
    kill "$old" 2>/dev/null || true
  fi
  launcher=(nohup)
  if command -v setsid >/dev/null 2>&1; then launcher+=(setsid); fi
  "${launcher[@]}" bash "$BIN" </dev/null >>"$LOG_PATH" 2>&1 &
  pid=$!
  printf '%s\n' "$pid" >"$PID_PATH"
  kill -0 "$pid" 2>/dev/null || fail "the lifetime watcher exited right away" "$(log_tail "$LOG_PATH")"
  field_s mode nohup
  field_n pid "$pid"
  field_s log "$LOG_PATH"
fi
field_s watcher "$BIN"
finish_ok

#!/usr/bin/env bash
# trainctl spot watcher: polls IMDSv2 spot/instance-action; on a notice it syncs the checkpoint
# directory to S3, leaves a marker file there and exits. Installed by install_spot_watcher.sh.
set -euo pipefail
# >>> params
CKPT_PATH=''
SYNC_TO=''
# <<< params
# >>> lib
# shellcheck source=lib.sh
. "${BASH_SOURCE[0]%/*}/lib.sh"
# <<< lib

if [ -n "${TRAINCTL_SANDBOX:-}" ] && [ -z "${TRAINCTL_IMDS_URL:-}" ]; then
  echo "trainctl-spot-watcher: emulated instance, no metadata service to watch" >&2
  exit 0
fi
IMDS=${TRAINCTL_IMDS_URL:-http://169.254.169.254}
IMDS=${IMDS%/}
POLL=${TRAINCTL_POLL_SECONDS:-5}
SYNC_DEADLINE=${TRAINCTL_SYNC_DEADLINE:-110}
case $SYNC_TO in s3://?*) ;; *) fail "not an s3:// URI" "$SYNC_TO" ;; esac
check_abs_path "checkpoint path" "$CKPT_PATH"
host_path DIR "$CKPT_PATH"
MARKER=$DIR/.trainctl-spot-notice

say() { printf '%s trainctl-spot-watcher: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

say "watching $IMDS every ${POLL}s; checkpoints $CKPT_PATH -> $SYNC_TO"
token=""
token_at=0
while true; do
  if [ -n "${TRAINCTL_SANDBOX:-}" ] && [ ! -d "$TRAINCTL_SANDBOX" ]; then
    say "the emulated instance's sandbox is gone; stopping"
    field_b notice false
    finish_ok
  fi
  now=$(date +%s)
  if [ -z "$token" ] || [ $((now - token_at)) -gt 3000 ]; then
    token=$(curl -sf -m 2 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 3600' \
      "$IMDS/latest/api/token" || true)
    token_at=$now
  fi
  code=$(curl -s -m 2 -o "$TRAINCTL_TMP/notice" -w '%{http_code}' \
    -H "X-aws-ec2-metadata-token: $token" "$IMDS/latest/meta-data/spot/instance-action" || true)
  case $code in
    200) break ;;
    401) token="" ;;
  esac
  sleep "$POLL"
done

notice=$(head -c 2000 -- "$TRAINCTL_TMP/notice" || true)
say "spot interruption notice: $notice"
started=$(date +%s)
synced=false
copied=0
attempts=0
while true; do
  attempts=$((attempts + 1))
  if [ ! -d "$DIR/" ]; then
    say "no checkpoint directory $CKPT_PATH; nothing to sync"
    synced=true
    break
  fi
  if (s3_sync "$DIR" "$SYNC_TO" "$TRAINCTL_TMP/sync.log" "*.trainctl-spot-notice" >/dev/null &&
    printf '%s\n' "$SYNC_COPIED" >"$TRAINCTL_TMP/copied"); then
    read -r copied <"$TRAINCTL_TMP/copied" || true
    synced=true
    say "checkpoints synced to $SYNC_TO ($copied files copied)"
    break
  fi
  say "checkpoint sync failed (attempt $attempts): $(log_tail "$TRAINCTL_TMP/sync.log")"
  : >"$TRAINCTL_TMP/sync.log"
  if [ $(($(date +%s) - started)) -ge "$SYNC_DEADLINE" ]; then break; fi
  sleep 2
done

mkdir -p -- "$DIR"
json_quote Q_NOTICE "$notice"
json_quote Q_TO "$SYNC_TO"
printf '{"notice":%s,"synced":%s,"copied":%s,"sync_to":%s,"at":"%s"}\n' "$Q_NOTICE" "$synced" \
  "${copied:-0}" "$Q_TO" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$MARKER.tmp"
mv -f -- "$MARKER.tmp" "$MARKER"
field_b synced "$synced"
field_n copied "${copied:-0}"
field_s marker "$CKPT_PATH/.trainctl-spot-notice"
[ "$synced" = true ] || fail "checkpoint sync failed after a spot notice" "$(log_tail "$TRAINCTL_TMP/sync.log")"
finish_ok

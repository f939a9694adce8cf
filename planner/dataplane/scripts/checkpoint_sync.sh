#!/usr/bin/env bash
# trainctl: copy the checkpoint directory to its S3 prefix (changed files only, nothing deleted).
set -euo pipefail
# >>> params
CKPT_PATH=''
SYNC_TO=''
# <<< params
# >>> lib
# shellcheck source=lib.sh
. "${BASH_SOURCE[0]%/*}/lib.sh"
# <<< lib

case $SYNC_TO in s3://?*) ;; *) fail "not an s3:// URI" "$SYNC_TO" ;; esac
check_abs_path "checkpoint path" "$CKPT_PATH"
host_path DIR "$CKPT_PATH"

field_s path "$CKPT_PATH"
field_s sync_to "$SYNC_TO"
# "present": false only when nothing is there at all: a file, a dangling link or anything
# else at the path is an error, never "nothing to sync".
if [ ! -d "$DIR/" ]; then
  if [ -e "$DIR" ] || [ -L "$DIR" ]; then
    fail "the checkpoint path is not a directory" "$CKPT_PATH"
  fi
  field_b present false
  field_n copied 0
  field_n objects 0
  field_n bytes 0
  finish_ok
fi
count_files "$DIR" ! -name .trainctl-spot-notice
if [ "$FILE_COUNT" = 0 ]; then
  SYNC_TOOL=none
  SYNC_COPIED=0
else
  s3_sync "$DIR" "$SYNC_TO" "$TRAINCTL_TMP/sync.log" "*.trainctl-spot-notice"
fi
field_b present true
field_s tool "$SYNC_TOOL"
field_n copied "$SYNC_COPIED"
field_n objects "$FILE_COUNT"
field_n bytes "$FILE_BYTES"
finish_ok

#!/usr/bin/env bash
# trainctl: LENGTH bytes of FILE from byte OFFSET, base64 in the status line (pages of a
# command's output or of a training log); SIZE is the file's size now. REMOVE_DIR, when set,
# is an `exec` output folder removed after this read.
set -euo pipefail
# >>> params
FILE=''
OFFSET=''
LENGTH=''
REMOVE_DIR=''
# <<< params
# >>> lib
# shellcheck source=lib.sh
. "${BASH_SOURCE[0]%/*}/lib.sh"
# <<< lib

check_abs_path "file" "$FILE"
host_path HOST_FILE "$FILE"
if [ ! -e "$HOST_FILE" ]; then
  field_b exists false
  field_n size 0
  field_s data ""
  finish_ok
fi
[ -f "$HOST_FILE" ] || fail "$FILE is not a regular file"
size=$(stat -c %s -- "$HOST_FILE")
data=$(dd if="$HOST_FILE" iflag=skip_bytes,count_bytes skip="$OFFSET" count="$LENGTH" \
  bs=65536 status=none | base64 -w0)
if [ -n "$REMOVE_DIR" ]; then
  [[ $REMOVE_DIR =~ ^/var/tmp/trainctl/exec/[a-z0-9-]{8,64}$ ]] || fail "bad output folder"
  host_path HOST_DIR "$REMOVE_DIR"
  rm -rf -- "$HOST_DIR"
fi
field_b exists true
field_n size "$size"
field_s data "$data"
finish_ok

#!/usr/bin/env bash
# trainctl cp: a file or folder of the instance to an S3 prefix (changed files, nothing
# deleted); MANIFEST_URI gets the NUL-separated file list (trainctl prunes its own prefix).
set -euo pipefail
# >>> params
SRC_PATH=''
URI=''
MANIFEST_URI=''
# <<< params
# >>> lib
# shellcheck source=lib.sh
. "${BASH_SOURCE[0]%/*}/lib.sh"
# <<< lib

case $URI in s3://?*/) ;; *) fail "not an s3:// prefix ending in /" "$URI" ;; esac
check_abs_path "source path" "$SRC_PATH"
host_path SRC "$SRC_PATH"
[ -e "$SRC" ] || fail "$SRC_PATH does not exist"
s3_endpoint
log=$TRAINCTL_TMP/push.log
if command -v s5cmd >/dev/null 2>&1 && ! has_glob "$SRC" && ! has_glob "$URI"; then
  tool="s5cmd"
  base=(s5cmd)
  if [ -n "$S3_ENDPOINT" ]; then base+=(--endpoint-url "$S3_ENDPOINT"); fi
elif command -v aws >/dev/null 2>&1; then
  tool="aws"
  base=(aws)
  if [ -n "$S3_ENDPOINT" ]; then base+=(--endpoint-url "$S3_ENDPOINT"); fi
  base+=(s3)
else
  fail "neither s5cmd nor the aws CLI is installed on the instance (or the path has a wildcard)"
fi
if [ -d "$SRC/" ]; then
  kind="dir"
  cmd=("${base[@]}" sync)
  if [ "$tool" = aws ]; then cmd+=(--no-progress); fi
  cmd+=("${SRC%/}/" "$URI")
  count_files "$SRC"
elif [ -f "$SRC" ]; then
  kind="file"
  name=${SRC##*/}
  cmd=("${base[@]}" cp)
  if [ "$tool" = aws ]; then cmd+=(--no-progress); fi
  cmd+=("$SRC" "$URI$name")
  FILE_COUNT=1
  FILE_BYTES=$(stat -c %s -- "$SRC")
else
  fail "$SRC_PATH is neither a regular file nor a folder"
fi
run_logged "$log" "${cmd[@]}"
if [ -n "$MANIFEST_URI" ]; then
  case $MANIFEST_URI in s3://?*) ;; *) fail "not an s3:// URI" "$MANIFEST_URI" ;; esac
  if [ "$kind" = dir ]; then
    find "${SRC%/}/" -type f -printf '%P\0' >"$TRAINCTL_TMP/manifest"
  else
    printf '%s\0' "$name" >"$TRAINCTL_TMP/manifest"
  fi
  run_logged "$TRAINCTL_TMP/manifest.log" "${base[@]}" cp "$TRAINCTL_TMP/manifest" "$MANIFEST_URI"
fi
if [ "$tool" = s5cmd ]; then
  copied=$(grep -c '^cp ' -- "$log" || true)
else
  copied=$(grep -cE '^(upload|copy): ' -- "$log" || true)
fi
field_s tool "$tool"
field_s kind "$kind"
field_n copied "$copied"
field_n objects "$FILE_COUNT"
field_n bytes "$FILE_BYTES"
finish_ok

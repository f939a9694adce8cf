#!/usr/bin/env bash
# trainctl: copy a dataset's S3 prefix to a path on the instance (only changed objects, never
# deleting anything there), then check file count and bytes against the manifest.
set -euo pipefail
# >>> params
URI=''
DEST_PATH=''
EXPECT_OBJECTS=''
EXPECT_BYTES=''
# <<< params
# >>> lib
# shellcheck source=lib.sh
. "${BASH_SOURCE[0]%/*}/lib.sh"
# <<< lib

case $URI in s3://?*) ;; *) fail "not an s3:// URI" "$URI" ;; esac
check_abs_path "dataset path" "$DEST_PATH"
for n in "$EXPECT_OBJECTS" "$EXPECT_BYTES"; do
  [[ -z $n || $n =~ ^[0-9]+$ ]] || fail "expected counts must be integers" "$n"
done

host_path DEST "$DEST_PATH"
pick_sync_tool "$URI" "$DEST"
# every key is checked before anything is written (s3_sync does it again, just before)
check_s3_keys "$URI" "$TRAINCTL_TMP/sync.log"
mkdir -p -- "$DEST"
[ -w "$DEST/" ] || fail "$DEST_PATH is not writable (a read-only mount?)"

# trainctl's record under a stage is not part of the dataset
s3_sync "$URI" "$DEST" "$TRAINCTL_TMP/sync.log" /.trainctl-stage.json
count_files "$DEST"

if [ -n "$EXPECT_OBJECTS" ] && [ "$FILE_COUNT" -lt "$EXPECT_OBJECTS" ]; then
  fail "$DEST_PATH holds $FILE_COUNT files after the sync, the dataset has $EXPECT_OBJECTS" \
    "$(log_tail "$TRAINCTL_TMP/sync.log")"
fi
if [ -n "$EXPECT_BYTES" ] && [ "$FILE_BYTES" -lt "$EXPECT_BYTES" ]; then
  fail "$DEST_PATH holds $FILE_BYTES bytes after the sync, the dataset has $EXPECT_BYTES" \
    "$(log_tail "$TRAINCTL_TMP/sync.log")"
fi

field_s tool "$SYNC_TOOL"
field_s uri "$URI"
field_s path "$DEST_PATH"
field_n copied "$SYNC_COPIED"
field_n keys_checked "$KEYS_CHECKED"
field_n objects "$FILE_COUNT"
field_n bytes "$FILE_BYTES"
if [ -n "$EXPECT_OBJECTS" ]; then field_n extra_objects $((FILE_COUNT - EXPECT_OBJECTS)); fi
finish_ok

#!/usr/bin/env bash
# trainctl: an existing-ebs dataset must be a directory that exists and is not empty.
set -euo pipefail
# >>> params
DATA_PATH=''
# <<< params
# >>> lib
# shellcheck source=lib.sh
. "${BASH_SOURCE[0]%/*}/lib.sh"
# <<< lib

check_abs_path "dataset path" "$DATA_PATH"
host_path DIR "$DATA_PATH"
[ -e "$DIR" ] || fail "dataset path $DATA_PATH does not exist"
[ -d "$DIR/" ] || fail "dataset path $DATA_PATH is not a directory"
first=$(find "$DIR/" -mindepth 1 -maxdepth 1 ! -name lost+found -print -quit)
[ -n "$first" ] || fail "dataset path $DATA_PATH is empty"
count_files "$DIR"

field_s path "$DATA_PATH"
field_n objects "$FILE_COUNT"
field_n bytes "$FILE_BYTES"
finish_ok

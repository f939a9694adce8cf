#!/usr/bin/env bash
# trainctl exec: run CMD (argv, no shell) on the instance; its stdout and stderr go to files
# that `read_output` pages back (SSM keeps only 24000 characters of a command's stdout).
set -euo pipefail
# >>> params
RUN_ID=''
WORK_DIR=''
CMD=()
# <<< params
# >>> lib
# shellcheck source=lib.sh
. "${BASH_SOURCE[0]%/*}/lib.sh"
# <<< lib

[[ $RUN_ID =~ ^[a-z0-9-]{8,64}$ ]] || fail "bad run id"
((${#CMD[@]})) || fail "no command given"
host_path OUT_DIR "/var/tmp/trainctl/exec/$RUN_ID"
mkdir -p -- "$OUT_DIR"
chmod 700 -- "$OUT_DIR"
if [ -n "$WORK_DIR" ]; then
  check_abs_path "working directory" "$WORK_DIR"
  host_path CWD "$WORK_DIR"
else
  CWD=${TRAINCTL_SANDBOX:-/}
fi
[ -d "$CWD" ] || fail "working directory ${WORK_DIR:-/} does not exist"

if (cd -- "$CWD" && exec "${CMD[@]}") </dev/null >"$OUT_DIR/stdout" 2>"$OUT_DIR/stderr"; then
  rc=0
else
  rc=$?
fi
field_n exit_code "$rc"
field_n stdout_bytes "$(stat -c %s -- "$OUT_DIR/stdout")"
field_n stderr_bytes "$(stat -c %s -- "$OUT_DIR/stderr")"
field_s dir "/var/tmp/trainctl/exec/$RUN_ID"
finish_ok

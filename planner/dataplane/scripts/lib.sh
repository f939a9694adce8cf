#!/usr/bin/env bash
# trainctl data-plane library, inlined into every rendered script (planner/dataplane/scripts.py).
# Status line, error traps, JSON without python, sandbox paths, S3 sync through s5cmd or aws.
# Works with bash >= 4.2 (Amazon Linux 2).
# shellcheck disable=SC2317,SC2034  # functions called from traps; variables set for the includer

TRAINCTL_FIELDS=()
TRAINCTL_EMITTED=""
TRAINCTL_LOG_TAIL=${TRAINCTL_LOG_TAIL:-40}

# JSON string literal for $2, stored in the variable named $1 (no command substitution, so
# trailing newlines survive).
json_quote() {
  local s=$2 i c r hex
  local bs="\\\\" q="\\\"" nl="\\n" cr="\\r" tab="\\t"
  s=${s//\\/"$bs"}
  s=${s//\"/"$q"}
  s=${s//$'\n'/"$nl"}
  s=${s//$'\r'/"$cr"}
  s=${s//$'\t'/"$tab"}
  for ((i = 1; i < 32; i++)); do
    printf -v hex '%02x' "$i"
    printf -v c '%b' "\\x$hex"
    if [[ $s == *"$c"* ]]; then
      printf -v r '\\u%04x' "$i"
      s=${s//"$c"/"$r"}
    fi
  done
  printf -v "$1" '"%s"' "$s"
}

field_s() {  # field_s NAME VALUE: a string field of the status line
  local k v
  json_quote k "$1"
  json_quote v "$2"
  TRAINCTL_FIELDS+=("$k:$v")
}

field_n() {  # field_n NAME INTEGER (a string field when it is not an integer)
  if [[ $2 =~ ^-?(0|[1-9][0-9]*)$ ]]; then
    local k
    json_quote k "$1"
    TRAINCTL_FIELDS+=("$k:$2")
  else
    field_s "$1" "$2"
  fi
}

field_b() {  # field_b NAME true|false
  local k v=false
  json_quote k "$1"
  [ "$2" = true ] && v=true
  TRAINCTL_FIELDS+=("$k:$v")
}

field_raw() {  # field_raw NAME JSON: a value the script already built as JSON
  local k
  json_quote k "$1"
  TRAINCTL_FIELDS+=("$k:$2")
}

trainctl_emit() {  # trainctl_emit ok|failed|refused
  local body IFS=,
  body="\"status\":\"$1\""
  if ((${#TRAINCTL_FIELDS[@]})); then
    body+=",${TRAINCTL_FIELDS[*]}"
  fi
  TRAINCTL_EMITTED=$1
  printf '\nTRAINCTL_STATUS {%s}\n' "$body"
}

finish_ok() {
  trainctl_emit ok
  exit 0
}

fail() {  # fail MESSAGE [DETAIL]: report failure and stop
  trap - ERR
  TRAINCTL_FIELDS=()
  field_s error "$1"
  if [ $# -gt 1 ]; then field_s detail "$2"; fi
  trainctl_emit failed
  exit 1
}

refuse() {  # refuse MESSAGE [DETAIL]: a safety refusal (status "refused": never a success)
  trap - ERR
  TRAINCTL_FIELDS=()
  field_s error "$1"
  if [ $# -gt 1 ]; then field_s detail "$2"; fi
  trainctl_emit refused
  exit 1
}

trainctl_on_err() {
  local rc=$1 line=$2 cmd=$3
  trap - ERR
  TRAINCTL_FIELDS=()
  field_s error "command failed with exit code $rc"
  field_n line "$line"
  field_s command "$cmd"
  field_n exit_code "$rc"
  trainctl_emit failed
  exit "$rc"
}

trainctl_on_exit() {
  local rc=$?
  trap - ERR
  if [ "$TRAINCTL_EMITTED" = failed ] || [ "$TRAINCTL_EMITTED" = refused ] ||
    { [ "$TRAINCTL_EMITTED" = ok ] && [ "$rc" = 0 ]; }; then
    return 0
  fi
  TRAINCTL_FIELDS=()
  if [ "$TRAINCTL_EMITTED" = ok ]; then
    field_s error "script exited with code $rc after reporting ok"
  else
    field_s error "script stopped with exit code $rc before reporting a status"
  fi
  field_n exit_code "$rc"
  trainctl_emit failed
}

set -o errtrace
trap 'trainctl_on_err "$?" "$LINENO" "$BASH_COMMAND"' ERR
trap 'trainctl_on_exit || true; [ -z "${TRAINCTL_TMP:-}" ] || rm -rf -- "$TRAINCTL_TMP"' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

# --- output of tools: kept off stdout (SSM keeps only the first 24000 characters) ---------

TRAINCTL_TMP=$(mktemp -d "${TMPDIR:-/tmp}/trainctl.XXXXXX")

log_tail() {  # the last lines of a log file, with anything looking like a status line defused
  tail -n "$TRAINCTL_LOG_TAIL" -- "$1" 2>/dev/null | sed -e 's/TRAINCTL_STATUS/TRAINCTL-STATUS/g' || true
}

run_logged() {  # run_logged LOGFILE CMD...: run CMD with its output in LOGFILE; fail with its tail
  local log=$1 rc=0
  shift
  "$@" >>"$log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    fail "$1 failed with exit code $rc" "$(log_tail "$log")"
  fi
}

# --- paths -----------------------------------------------------------------------------

check_abs_path() {  # check_abs_path WHAT PATH: absolute, no '..' or '.' components
  local what=$1 p=$2
  case $p in
    /*) ;;
    *) fail "$what must be an absolute path" "$p" ;;
  esac
  case /$p/ in
    */../* | */./*) fail "$what must not contain '.' or '..' components" "$p" ;;
  esac
}

host_path() {  # host_path VAR PATH: where an instance path lives here (under the sandbox)
  if [ -n "${TRAINCTL_SANDBOX:-}" ]; then
    printf -v "$1" '%s/%s' "${TRAINCTL_SANDBOX%/}" "${2#/}"
  else
    printf -v "$1" '%s' "$2"
  fi
}

in_sandbox() {  # an emulated instance: no devices, paths under $TRAINCTL_SANDBOX
  [ -n "${TRAINCTL_SANDBOX:-}" ] && [ -z "${TRAINCTL_DEVICE:-}" ]
}

count_files() {  # count_files DIR [FIND ARGS...]: sets FILE_COUNT and FILE_BYTES
  local dir=$1 out
  shift
  FILE_COUNT=0
  FILE_BYTES=0
  if [ -d "$dir" ]; then
    out=$(find "$dir/" -type f "$@" -printf '%s\n' | awk '{n++; b+=$1} END {printf "%d %.0f\n", n, b}')
    read -r FILE_COUNT FILE_BYTES <<<"$out"
  fi
}

# --- S3 sync ---------------------------------------------------------------------------

s3_endpoint() {  # the endpoint override, if any, in S3_ENDPOINT
  S3_ENDPOINT=${S3_ENDPOINT_URL:-${AWS_ENDPOINT_URL_S3:-${AWS_ENDPOINT_URL:-}}}
}

has_glob() {
  case $1 in
    *'*'* | *'?'* | *'['*) return 0 ;;
  esac
  return 1
}

s3_split() {  # s3_split URI: S3_BUCKET, and S3_PREFIX ("" or ending in one '/')
  local rest=${1#s3://}
  S3_BUCKET=${rest%%/*}
  S3_PREFIX=""
  case $rest in */?*) S3_PREFIX=${rest#*/} ;; esac
  if [ -n "$S3_PREFIX" ]; then S3_PREFIX=${S3_PREFIX%/}/; fi
}

pick_sync_tool() {  # pick_sync_tool SRC DST: SYNC_TOOL, s5cmd unless a path has a wildcard
  SYNC_TOOL=""
  if command -v s5cmd >/dev/null 2>&1 && ! has_glob "$1" && ! has_glob "$2"; then
    SYNC_TOOL=s5cmd
  elif command -v aws >/dev/null 2>&1; then
    SYNC_TOOL=aws
  elif command -v s5cmd >/dev/null 2>&1; then
    fail "s5cmd would read '*', '?' or '[' in a path as a wildcard and the aws CLI is missing" \
      "$1 -> $2"
  else
    fail "neither s5cmd nor the aws CLI is installed on the instance"
  fi
}

# The key check: reads the tool's JSON listing (s5cmd --json ls lines, or the aws CLI's
# JSON list of keys), decodes each key's escapes and prints `UNSAFE "<key as listed>" (why)`
# for every key below PFX that is not a safe relative path (planner/keys.py's rule), and
# "UNREADABLE <line>" for a line it cannot read; then "CHECKED <count>".
# shellcheck disable=SC2016  # awk code, not shell
TRAINCTL_KEY_AWK='
function why_unsafe(key, flag,    rel, path, n, i, parts) {
  if (substr(key, 1, length(pfx)) != pfx) return "not below the prefix"
  rel = substr(key, length(pfx) + 1)
  if (rel == "") return ""
  if (flag != "") return flag
  path = rel
  if (substr(path, length(path)) == "/") path = substr(path, 1, length(path) - 1)
  if (path ~ /[\001-\037\177]/) return "a control character"
  if (path == "") return "an empty segment"
  if (substr(path, 1, 1) == "/") return "a leading /"
  n = split(path, parts, "/")
  for (i = 1; i <= n; i++) if (parts[i] == "..") return "a .. segment"
  for (i = 1; i <= n; i++) if (parts[i] == ".") return "a . segment"
  for (i = 1; i <= n; i++) if (parts[i] == "") return "an empty segment"
  return ""
}
{
  line = $0
  if (mode == "s5cmd") {
    if (line == "") next
    if (index(line, "{\"key\":\"") != 1) { print "UNREADABLE " line; next }
    start = 9
  } else {
    if (line ~ /^[ \t]*(\[|\]|null|\[\])[ \t]*$/ || line == "") next
    if (match(line, /^[ \t]*"/) == 0) { print "UNREADABLE " line; next }
    start = RLENGTH + 1
  }
  key = ""; flag = ""; closed = 0; L = length(line); j = start
  while (j <= L) {
    c = substr(line, j, 1)
    if (c == "\"") { closed = 1; break }
    if (c == "\\") {
      e = substr(line, j + 1, 1)
      if (e == "u") {
        h = tolower(substr(line, j + 2, 4)); j += 6
        if (h ~ /^00[01]/ || h == "007f") flag = "a control character"
        else if (h == "005c") flag = "a backslash"
        else if (h == "002f") key = key "/"
        else if (h == "002e") key = key "."
        else key = key "_"
        continue
      }
      if (e == "\\") flag = "a backslash"
      else if (e == "/") key = key "/"
      else if (e == "\"") key = key "_"
      else flag = "a control character"
      j += 2
      continue
    }
    key = key c
    j++
  }
  if (!closed) { print "UNREADABLE " line; next }
  n++
  why = why_unsafe(key, flag)
  if (why != "") print "UNSAFE \"" substr(line, start, j - start) "\" (" why ")"
}
END { print "CHECKED " n + 0 }
'

# check_s3_keys URI LOG: list every key below URI with SYNC_TOOL, before anything is
# copied, and fail when one is not a safe relative path below the prefix ('..', a leading
# '/', empty or '.' segments, backslashes, control characters): s5cmd writes a '..' key
# outside the destination. Sets KEYS_CHECKED.
check_s3_keys() {
  local uri=$1 log=$2 out=$TRAINCTL_TMP/keys.json found=$TRAINCTL_TMP/keys.check rc=0
  local pfx mode bad
  local -a cmd
  s3_endpoint
  s3_split "$uri"
  if [ "$SYNC_TOOL" = s5cmd ]; then
    cmd=(s5cmd)
    if [ -n "$S3_ENDPOINT" ]; then cmd+=(--endpoint-url "$S3_ENDPOINT"); fi
    cmd+=(--json ls "s3://$S3_BUCKET/$S3_PREFIX*")
    pfx="s3://$S3_BUCKET/$S3_PREFIX"
    mode=s5cmd
  else
    cmd=(aws)
    if [ -n "$S3_ENDPOINT" ]; then cmd+=(--endpoint-url "$S3_ENDPOINT"); fi
    cmd+=(s3api list-objects-v2 --bucket "$S3_BUCKET" --prefix "$S3_PREFIX"
      --query 'Contents[].Key' --output json)
    pfx=$S3_PREFIX
    mode=aws
  fi
  "${cmd[@]}" >"$out" 2>>"$log" || rc=$?
  if [ "$rc" != 0 ]; then
    if [ "$mode" = s5cmd ] && grep -q '"error":"no object found"' -- "$log"; then
      : >"$out"
    else
      fail "listing $uri to check its keys failed with exit code $rc; nothing was copied" \
        "$(log_tail "$log")"
    fi
  fi
  LC_ALL=C awk -v mode="$mode" -v pfx="$pfx" "$TRAINCTL_KEY_AWK" "$out" >"$found"
  if grep -q '^UNREADABLE ' -- "$found"; then
    fail "the listing of $uri could not be read to check its keys; nothing was copied" \
      "$(grep '^UNREADABLE ' -- "$found" | head -n 3 | cut -c1-300)"
  fi
  bad=$(grep -c '^UNSAFE ' -- "$found" || true)
  if [ "$bad" != 0 ]; then
    what="$bad keys under $uri are not safe relative paths"
    [ "$bad" = 1 ] && what="1 key under $uri is not a safe relative path"
    refuse "$what and could be written outside the destination; nothing was copied: $(grep '^UNSAFE ' -- "$found" | head -n 5 | cut -c8- | paste -sd ' ' -)" \
      "$(grep '^UNSAFE ' -- "$found" | head -n 20 | cut -c8-)"
  fi
  KEYS_CHECKED=$(sed -n 's/^CHECKED //p' -- "$found")
  KEYS_CHECKED_FOR=$uri
}

# s3_sync SRC DST LOG [EXCLUDE...]: copy what changed from SRC to DST (one of them s3://),
# never deleting anything. An EXCLUDE `/NAME` skips the object NAME right below an S3 SRC
# (s5cmd's sync matches the key below the bucket, its cp and the aws CLI the path below
# SRC, so it is written for each). From S3, every key is checked first (check_s3_keys). Sets
# SYNC_TOOL, SYNC_COPIED and (from S3) KEYS_CHECKED. Into an empty folder it copies
# (`cp`): with nothing there to compare, `sync` only adds work (s5cmd: 2 to 3x the time).
s3_sync() {
  local src=$1 dst=$2 log=$3 pat verb=sync
  shift 3
  local -a cmd
  case $src in
    s3://*) if [ -d "$dst" ] && [ -z "$(find "$dst" -mindepth 1 -print -quit)" ]; then verb="cp"; fi ;;
  esac
  s3_endpoint
  pick_sync_tool "$src" "$dst"
  case $src in
    s3://*) [ "${KEYS_CHECKED_FOR:-}" = "$src" ] || check_s3_keys "$src" "$log" ;;
  esac
  if [ "$SYNC_TOOL" = s5cmd ]; then
    cmd=(s5cmd)
    if [ -n "$S3_ENDPOINT" ]; then cmd+=(--endpoint-url "$S3_ENDPOINT"); fi
    cmd+=("$verb")
    for pat in ${1+"$@"}; do
      case $pat in
        /*) s3_split "$src"
          if [ "$verb" = sync ]; then pat=$S3_PREFIX${pat#/}; else pat=${pat#/}; fi ;;
      esac
      cmd+=(--exclude "$pat")
    done
    case $src in
      s3://*) cmd+=("${src%/}/*" "${dst%/}/") ;;
      *) cmd+=("${src%/}/" "${dst%/}/") ;;
    esac
  else
    cmd=(aws)
    if [ -n "$S3_ENDPOINT" ]; then cmd+=(--endpoint-url "$S3_ENDPOINT"); fi
    if [ "$verb" = cp ]; then
      cmd+=(s3 cp --recursive --no-progress)
    else
      cmd+=(s3 sync --no-progress)
      # a same-size object changed in S3 is copied again only with exact timestamps
      case $src in s3://*) cmd+=(--exact-timestamps) ;; esac
    fi
    for pat in ${1+"$@"}; do cmd+=(--exclude "${pat#/}"); done
    cmd+=("${src%/}/" "${dst%/}/")
  fi
  run_logged "$log" "${cmd[@]}"
  if [ "$SYNC_TOOL" = s5cmd ]; then
    SYNC_COPIED=$(grep -c '^cp ' -- "$log" || true)
  else
    SYNC_COPIED=$(grep -cE '^(download|upload|copy): ' -- "$log" || true)
  fi
}

# --- block devices and fstab (mount.sh, unmount.sh) --------------------------------------

# find_volume_device VOLUME_ID DEVICE: sets VOLUME_DEVICE to the attached EBS volume's device,
# or "" when it is not (yet) visible. NVMe: the volume id is the device serial; otherwise
# the device name given in the spec, or its xvd/sd twin.
find_volume_device() {
  local vol=$1 dev=$2 serial name alt
  VOLUME_DEVICE=""
  if [ -n "${TRAINCTL_DEVICE:-}" ]; then
    [ -b "$TRAINCTL_DEVICE" ] && VOLUME_DEVICE=$(readlink -f -- "$TRAINCTL_DEVICE")
    return 0
  fi
  serial=${vol//-/}
  if [ -e "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_$serial" ]; then
    VOLUME_DEVICE=$(readlink -f -- "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_$serial")
    return 0
  fi
  if command -v lsblk >/dev/null 2>&1; then
    name=$(lsblk -dnpro NAME,SERIAL 2>/dev/null | T_SERIAL=$serial awk '$2 == ENVIRON["T_SERIAL"] {print $1; exit}' || true)
    if [ -n "$name" ] && [ -b "$name" ]; then
      VOLUME_DEVICE=$name
      return 0
    fi
  fi
  if [ -n "$dev" ] && [ -b "$dev" ]; then
    VOLUME_DEVICE=$(readlink -f -- "$dev")
    return 0
  fi
  case $dev in
    /dev/sd*) alt=/dev/xvd${dev#/dev/sd} ;;
    /dev/xvd*) alt=/dev/sd${dev#/dev/xvd} ;;
    *) alt="" ;;
  esac
  if [ -n "$alt" ] && [ -b "$alt" ]; then
    VOLUME_DEVICE=$(readlink -f -- "$alt")
  fi
  return 0
}

majmin() {  # majmin VAR DEVICE: "major:minor" of a block device
  local out
  out=$(lsblk -dnro MAJ:MIN -- "$2")
  printf -v "$1" '%s' "${out//[[:space:]]/}"
}

fstab_encode() {  # fstab_encode VAR PATH: spaces and friends as fstab octal escapes
  local p=$2 bs='\134' sp='\040' tab='\011' nl='\012'
  p=${p//\\/"$bs"}
  p=${p// /"$sp"}
  p=${p//$'\t'/"$tab"}
  p=${p//$'\n'/"$nl"}
  printf -v "$1" '%s' "$p"
}

# fstab_set FSTAB MOUNTPOINT_ENCODED SOURCE LINE: LINE replaces every entry for that mount point
# or that source (one line, never duplicated); LINE "" removes them. Sets FSTAB_CHANGED.
fstab_set() {
  local fstab=$1 tmp
  FSTAB_CHANGED=false
  mkdir -p -- "${fstab%/*}"
  [ -e "$fstab" ] || : >"$fstab"
  tmp=$(mktemp "$fstab.trainctl.XXXXXX")
  T_MNT=$2 T_SRC=$3 T_LINE=$4 awk '
    /^[[:space:]]*#/ || NF < 2 { print; next }
    $2 == ENVIRON["T_MNT"] || (ENVIRON["T_SRC"] != "" && $1 == ENVIRON["T_SRC"]) {
      if (!done && ENVIRON["T_LINE"] != "") print ENVIRON["T_LINE"]
      done = 1
      next
    }
    { print }
    END { if (!done && ENVIRON["T_LINE"] != "") print ENVIRON["T_LINE"] }
  ' "$fstab" >"$tmp"
  if cmp -s -- "$tmp" "$fstab"; then
    rm -f -- "$tmp"
  else
    chmod --reference="$fstab" -- "$tmp" 2>/dev/null || chmod 644 -- "$tmp"
    mv -f -- "$tmp" "$fstab"
    FSTAB_CHANGED=true
  fi
}

#!/usr/bin/env bash
# trainctl: make a filesystem on an EBS volume only if it has none, mount it, keep fstab
# (by UUID, nofail) and grow the filesystem after a size increase. Idempotent.
set -euo pipefail
# >>> params
VOLUME_ID=''
DEVICE=''
MOUNT_PATH=''
READ_ONLY='false'
FILESYSTEM='xfs'
# <<< params
# >>> lib
# shellcheck source=lib.sh
. "${BASH_SOURCE[0]%/*}/lib.sh"
# <<< lib

[[ $VOLUME_ID =~ ^vol-[0-9a-zA-Z]+$ ]] || fail "not a volume id" "$VOLUME_ID"
check_abs_path "mount path" "$MOUNT_PATH"
[ "$MOUNT_PATH" != / ] || fail "refusing to mount a volume over /"
case $FILESYSTEM in xfs | ext4) ;; *) fail "unsupported filesystem" "$FILESYSTEM" ;; esac
case $READ_ONLY in true | false) ;; *) fail "read_only must be true or false" "$READ_ONLY" ;; esac

host_path TARGET "$MOUNT_PATH"
host_path FSTAB /etc/fstab
FSTAB=${TRAINCTL_FSTAB:-$FSTAB}
FORMATTED=false
GROWN=false
MOUNTED=false
REMOUNTED=false
GROW_PENDING=false
OPTS=defaults,nofail
if [ "$READ_ONLY" = true ]; then OPTS+=,ro; fi

# --- emulated instance: the volume is a folder shared by every sandbox, linked in ---------
if in_sandbox; then
  store_root=${TRAINCTL_VOLUME_STORE:-${TRAINCTL_SANDBOX_ROOT:-${TRAINCTL_SANDBOX%/*}}/volumes}
  store=$store_root/$VOLUME_ID
  if [ ! -d "$store" ]; then
    mkdir -p -- "$store"
    printf '%s\n' "$FILESYSTEM" >"$store_root/$VOLUME_ID.fstype"
    FORMATTED=true
  fi
  fstype=$FILESYSTEM
  if [ -s "$store_root/$VOLUME_ID.fstype" ]; then read -r fstype <"$store_root/$VOLUME_ID.fstype"; fi
  mkdir -p -- "${TARGET%/*}"
  if [ -L "$TARGET" ]; then
    current=$(readlink -- "$TARGET")
    [ "$current" = "$store" ] || fail "another volume is mounted at $MOUNT_PATH" "$current"
  elif [ -d "$TARGET" ]; then
    [ -z "$(find "$TARGET" -mindepth 1 -maxdepth 1 -print -quit)" ] ||
      fail "the sandbox mount point $MOUNT_PATH is not empty" "$TARGET"
    rmdir -- "$TARGET"
    ln -s -- "$store" "$TARGET"
    MOUNTED=true
  elif [ -e "$TARGET" ]; then
    fail "the mount point exists and is not a directory" "$TARGET"
  else
    ln -s -- "$store" "$TARGET"
    MOUNTED=true
  fi
  marker_dir=$TRAINCTL_SANDBOX/var/lib/trainctl/mounts
  mkdir -p -- "$marker_dir"
  printf '%s\n%s\n' "$READ_ONLY" "$MOUNT_PATH" >"$marker_dir/$VOLUME_ID"
  fstab_encode ENC "$MOUNT_PATH"
  fstab_set "$FSTAB" "$ENC" "UUID=$VOLUME_ID" \
    "UUID=$VOLUME_ID $ENC $fstype $OPTS 0 0"
  field_s device sandbox
  field_s uuid "$VOLUME_ID"
  field_s fstype "$fstype"
  field_s path "$MOUNT_PATH"
  field_b read_only "$READ_ONLY"
  field_b formatted "$FORMATTED"
  field_b grown false
  field_b mounted "$MOUNTED"
  field_b fstab_changed "$FSTAB_CHANGED"
  changed=false
  if [ "$FORMATTED" = true ] || [ "$MOUNTED" = true ] || [ "$FSTAB_CHANGED" = true ]; then
    changed=true
  fi
  field_b changed "$changed"
  field_b sandbox true
  finish_ok
fi

# --- a real device ----------------------------------------------------------------------
wait_s=${TRAINCTL_DEVICE_WAIT:-120}
for ((i = 0; ; i++)); do
  find_volume_device "$VOLUME_ID" "$DEVICE"
  if [ -n "$VOLUME_DEVICE" ] || [ "$i" -ge "$wait_s" ]; then break; fi
  sleep 1
done
[ -n "$VOLUME_DEVICE" ] || fail "volume $VOLUME_ID is not visible on this instance after ${wait_s}s" \
  "looked for NVMe serial ${VOLUME_ID//-/}, $DEVICE and its xvd/sd twin"
DEV=$VOLUME_DEVICE

# Never touch the disk the root filesystem lives on.
root_src=$(findmnt -rno SOURCE / 2>/dev/null || true)
if [ -b "$root_src" ]; then
  root_src=$(readlink -f -- "$root_src")
  root_disk=$(lsblk -dnpro PKNAME -- "$root_src" 2>/dev/null || true)
  if [ "$DEV" = "$root_src" ] || [ "$DEV" = "${root_disk:-}" ]; then
    fail "refusing to use $DEV: it holds the root filesystem"
  fi
fi

LOG=$TRAINCTL_TMP/mount.log
probe() {  # probe: sets PROBE_RC, FSTYPE, UUID, PTTYPE from blkid's low-level probe
  local out line
  FSTYPE="" UUID="" PTTYPE=""
  PROBE_RC=0
  out=$(blkid -p -o export -- "$DEV" 2>&1) || PROBE_RC=$?
  if [ "$PROBE_RC" = 0 ]; then
    while IFS= read -r line; do
      case $line in
        TYPE=*) FSTYPE=${line#TYPE=} ;;
        UUID=*) UUID=${line#UUID=} ;;
        PTTYPE=*) PTTYPE=${line#PTTYPE=} ;;
      esac
    done <<<"$out"
  else
    PROBE_OUT=$out
  fi
}

probe
case $PROBE_RC in
  0) ;;
  2)
    # blkid found no signature at all: the only case where trainctl makes a filesystem.
    if findmnt -rn -S "$DEV" >/dev/null 2>&1; then
      fail "$DEV is mounted but blkid finds no filesystem on it; not formatting"
    fi
    case $FILESYSTEM in
      xfs) run_logged "$LOG" mkfs.xfs -q "$DEV" ;;
      ext4) run_logged "$LOG" mkfs.ext4 -q "$DEV" ;;
    esac
    FORMATTED=true
    probe
    [ "$PROBE_RC" = 0 ] || fail "blkid cannot read the filesystem just made on $DEV" "${PROBE_OUT:-}"
    ;;
  *) fail "blkid could not probe $DEV (exit code $PROBE_RC); not formatting" "${PROBE_OUT:-}" ;;
esac
if [ -z "$FSTYPE" ]; then
  if [ -n "$PTTYPE" ]; then
    fail "$DEV holds a $PTTYPE partition table; trainctl mounts whole-device filesystems only"
  fi
  fail "$DEV holds a signature blkid does not name as a filesystem; not formatting"
fi
case $FSTYPE in
  xfs | ext4 | ext3 | ext2) ;;
  *) fail "$DEV holds a $FSTYPE filesystem, which trainctl does not mount" ;;
esac
[ -n "$UUID" ] || fail "the $FSTYPE filesystem on $DEV has no UUID"

# The device is larger than its filesystem after an EBS size increase. An ext4 filesystem
# that is not mounted yet is checked and grown offline (online growing needs CAP_SYS_RESOURCE).
dev_size=$(blockdev --getsize64 "$DEV")
GROW_SLACK=1048576
fs_bytes() {  # fs_bytes VAR: the filesystem's size in bytes
  local out
  case $FSTYPE in
    xfs)
      out=$(xfs_info "$TARGET" | awk '
        /^data/ {
          for (i = 1; i <= NF; i++) {
            v = $i
            sub(/,$/, "", v)
            if (v ~ /^bsize=/) { sub(/^bsize=/, "", v); b = v }
            if (v ~ /^blocks=/) { sub(/^blocks=/, "", v); n = v }
          }
        }
        END { printf "%.0f", b * n }')
      ;;
    *)
      out=$(dumpe2fs -h "$DEV" 2>/dev/null | awk -F: '
        /^Block count:/ { gsub(/ /, "", $2); n = $2 }
        /^Block size:/ { gsub(/ /, "", $2); b = $2 }
        END { printf "%.0f", b * n }')
      ;;
  esac
  printf -v "$1" '%s' "$out"
}

if [ "$READ_ONLY" = false ] && [ "$FSTYPE" != xfs ] &&
  ! findmnt -rn -S "$DEV" >/dev/null 2>&1; then
  fs_bytes MEASURED
  if [ "$MEASURED" -gt 0 ] && [ $((dev_size - MEASURED)) -ge "$GROW_SLACK" ]; then
    fsck_rc=0
    e2fsck -f -p "$DEV" >>"$LOG" 2>&1 || fsck_rc=$?
    [ "$fsck_rc" -le 1 ] || fail "e2fsck found problems on $DEV it cannot fix unattended; not growing" \
      "$(log_tail "$LOG")"
    run_logged "$LOG" resize2fs "$DEV"
    GROWN=true
  fi
fi

majmin DEV_MM "$DEV"
if src_mm=$(findmnt -rn -M "$TARGET" -o MAJ:MIN 2>/dev/null); then
  src_mm=${src_mm//[[:space:]]/}
  if [ "$src_mm" != "$DEV_MM" ]; then
    fail "another device is mounted at $MOUNT_PATH" "$(findmnt -rn -M "$TARGET" -o SOURCE || true)"
  fi
  cur_opts=$(findmnt -rn -M "$TARGET" -o OPTIONS)
  cur_ro=false
  case ,$cur_opts, in *,ro,*) cur_ro=true ;; esac
  if [ "$cur_ro" != "$READ_ONLY" ]; then
    if [ "$READ_ONLY" = true ]; then
      run_logged "$LOG" mount -o remount,ro "$TARGET"
    else
      run_logged "$LOG" mount -o remount,rw "$TARGET"
    fi
    REMOUNTED=true
  fi
else
  if elsewhere=$(findmnt -rn -S "$DEV" -o TARGET 2>/dev/null); then
    fail "$DEV is already mounted elsewhere; unmount it first" "$elsewhere"
  fi
  mkdir -p -- "$TARGET"
  if [ "$READ_ONLY" = true ]; then
    run_logged "$LOG" mount -t "$FSTYPE" -o ro "$DEV" "$TARGET"
  else
    run_logged "$LOG" mount -t "$FSTYPE" -o rw "$DEV" "$TARGET"
  fi
  MOUNTED=true
fi

# Grow the filesystem while mounted (xfs always; ext4 when it was mounted before this run).
fs_bytes MEASURED
fs_size=$MEASURED
if [ "$fs_size" -gt 0 ] && [ $((dev_size - fs_size)) -ge "$GROW_SLACK" ]; then
  if [ "$READ_ONLY" = true ]; then
    GROW_PENDING=true
  else
    case $FSTYPE in
      xfs) run_logged "$LOG" xfs_growfs -d "$TARGET" ;;
      *) run_logged "$LOG" resize2fs "$DEV" ;;
    esac
    fs_bytes NEW_SIZE
    [ "$NEW_SIZE" -gt "$fs_size" ] || fail "growing the filesystem on $DEV did not change its size" \
      "$(log_tail "$LOG")"
    fs_size=$NEW_SIZE
    GROWN=true
  fi
fi

fstab_encode ENC "$TARGET"
pass=2
[ "$FSTYPE" = xfs ] && pass=0
fstab_set "$FSTAB" "$ENC" "UUID=$UUID" "UUID=$UUID $ENC $FSTYPE $OPTS 0 $pass"

# Verify what the kernel says.
seen=$(findmnt -rn -M "$TARGET" -o FSTYPE,OPTIONS) || fail "$MOUNT_PATH is not mounted after mount"
read -r seen_type seen_opts <<<"$seen"
[ "$seen_type" = "$FSTYPE" ] || fail "$MOUNT_PATH is mounted as $seen_type, expected $FSTYPE"
seen_ro=false
case ,$seen_opts, in *,ro,*) seen_ro=true ;; esac
[ "$seen_ro" = "$READ_ONLY" ] || fail "$MOUNT_PATH is mounted with $seen_opts, read_only=$READ_ONLY"

field_s device "$DEV"
field_s uuid "$UUID"
field_s fstype "$FSTYPE"
field_s path "$MOUNT_PATH"
field_b read_only "$READ_ONLY"
field_b formatted "$FORMATTED"
field_b grown "$GROWN"
field_b grow_pending "$GROW_PENDING"
field_b mounted "$MOUNTED"
field_b remounted "$REMOUNTED"
field_b fstab_changed "$FSTAB_CHANGED"
field_n device_bytes "$dev_size"
field_n fs_bytes "$fs_size"
changed=false
for flag in "$FORMATTED" "$GROWN" "$MOUNTED" "$REMOUNTED" "$FSTAB_CHANGED"; do
  if [ "$flag" = true ]; then changed=true; fi
done
field_b changed "$changed"
field_b sandbox false
finish_ok

#!/usr/bin/env bash
# trainctl: make a filesystem on an EBS volume only if it certainly holds nothing (trainctl
# created it empty, blkid finds no signature, and every probed region reads as zeros), mount
# it, keep fstab (by UUID, nofail) and grow the filesystem after a size increase. Idempotent.
set -euo pipefail
# >>> params
VOLUME_ID=''
DEVICE=''
MOUNT_PATH=''
READ_ONLY='false'
FILESYSTEM='xfs'
MAY_FORMAT='false'
VOLUME_BYTES=''
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
case $MAY_FORMAT in true | false) ;; *) fail "may_format must be true or false" "$MAY_FORMAT" ;; esac
[[ $VOLUME_BYTES =~ ^[0-9]*$ ]] || fail "volume_bytes must be a byte count" "$VOLUME_BYTES"
HOLDS_DATA="device holds data but no known filesystem"
NOT_CREATED_EMPTY="volume $VOLUME_ID was not created empty by trainctl in this project (it \
comes from a snapshot or an import, or carries no trainctl:created-empty tag), so it is \
never formatted"

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
  size_file=$store_root/$VOLUME_ID.fsbytes   # the emulated filesystem's size
  if [ ! -d "$store" ]; then
    [ "$MAY_FORMAT" = true ] || refuse "$HOLDS_DATA" "$NOT_CREATED_EMPTY"
    mkdir -p -- "$store"
    printf '%s\n' "$FILESYSTEM" >"$store_root/$VOLUME_ID.fstype"
    printf '%s\n' "$VOLUME_BYTES" >"$size_file"
    FORMATTED=true
  fi
  fstype=$FILESYSTEM
  if [ -s "$store_root/$VOLUME_ID.fstype" ]; then read -r fstype <"$store_root/$VOLUME_ID.fstype"; fi
  # The emulated device is as large as EC2 says the volume is; its filesystem grows to it.
  fs_size=""
  if [ -s "$size_file" ]; then read -r fs_size <"$size_file" || true; fi
  if [ -n "$VOLUME_BYTES" ] && { [ -z "$fs_size" ] || [ "$VOLUME_BYTES" -gt "$fs_size" ]; }; then
    if [ -n "$fs_size" ]; then GROWN=true; fi
    printf '%s\n' "$VOLUME_BYTES" >"$size_file"
    fs_size=$VOLUME_BYTES
  fi
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
  field_b grown "$GROWN"
  field_b mounted "$MOUNTED"
  field_b fstab_changed "$FSTAB_CHANGED"
  if [ -n "$VOLUME_BYTES" ]; then field_n device_bytes "$VOLUME_BYTES"; fi
  if [ -n "$fs_size" ]; then field_n fs_bytes "$fs_size"; fi
  changed=false
  for flag in "$FORMATTED" "$GROWN" "$MOUNTED" "$FSTAB_CHANGED"; do
    if [ "$flag" = true ]; then changed=true; fi
  done
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

# --- is the device certainly blank? -------------------------------------------------------
# blkid finds nothing on an ext4 or xfs whose primary superblock is damaged, yet its backups
# (and the data) are still there: e2fsck -b / xfs_repair recover it, mkfs would not.
dev_size=$(blockdev --getsize64 "$DEV")
MIB=1048576
CHUNK=65536
declare -A PROBE_WHAT=()
probe_at() {  # probe_at OFFSET WHAT: a region to read before formatting (on the device only)
  local off=$(($1 - $1 % 4096))
  [ "$off" -lt "$dev_size" ] || return 0
  case ${PROBE_WHAT[$off]:-} in
    "") PROBE_WHAT[$off]=$2 ;;
    "$2" | "$2, "* | *", $2" | *", $2, "*) ;;
    *) PROBE_WHAT[$off]+=", $2" ;;
  esac
}
probe_regions() {  # the start and end, and every place a filesystem keeps a spare superblock
  local off bs group base g n k ag
  for ((off = 0; off < MIB; off += CHUNK)); do probe_at "$off" "the first MiB"; done
  for ((off = dev_size - MIB; off < dev_size; off += CHUNK)); do
    if [ "$off" -ge 0 ]; then probe_at "$off" "the last MiB"; fi
  done
  # ext2/3/4 backup superblocks (sparse_super: groups 1 and powers of 3, 5, 7) for each block
  # size: a group spans 8 * BS blocks, so 8 * BS^2 bytes.
  for bs in 1024 2048 4096 8192 16384 32768 65536; do
    group=$((8 * bs * bs))
    probe_at $((group + (bs == 1024 ? 1024 : 0))) "an ext4 backup superblock ($bs-byte blocks, group 1)"
    for base in 3 5 7; do
      for ((g = base; g * group < dev_size; g *= base)); do
        probe_at $((g * group + (bs == 1024 ? 1024 : 0))) \
          "an ext4 backup superblock ($bs-byte blocks, group $g)"
      done
    done
  done
  # xfs secondary superblocks at every allocation group's start: mkfs.xfs splits the device
  # into N equal groups (N = 4 by default, more on striped devices), at most 1 TiB each.
  for n in 2 4 8 16 32 64; do
    ag=$((dev_size / n / 4096 * 4096))
    for ((k = 1; k < n; k++)); do probe_at $((k * ag)) "an xfs secondary superblock (AG $k of $n)"; done
  done
  for ((off = 1 << 40; off < dev_size; off += 1 << 40)); do
    probe_at "$off" "an xfs secondary superblock (1 TiB groups)"
  done
  # btrfs superblock mirrors
  probe_at $((64 * MIB)) "a btrfs superblock mirror (64 MiB)"
  probe_at $((256 << 30)) "a btrfs superblock mirror (256 GiB)"
}
device_reads_as_zeros() {  # sets NONZERO_AT to the first region that is not zeros ("" if none)
  local off offs=() lens=() total=0 len out byte i
  NONZERO_AT=""
  probe_regions
  mapfile -t offs < <(printf '%s\n' "${!PROBE_WHAT[@]}" | sort -n)
  PROBED=${#offs[@]}
  for off in "${offs[@]}"; do
    len=$CHUNK
    if [ $((off + len)) -gt "$dev_size" ]; then len=$((dev_size - off)); fi
    lens+=("$len")
    total=$((total + len))
  done
  # All regions, in order, through one cmp against zeros; a short read is never "zeros".
  out=$(for ((i = 0; i < PROBED; i++)); do
    dd if="$DEV" bs="$CHUNK" iflag=skip_bytes,count_bytes skip="${offs[i]}" \
      count="${lens[i]}" status=none 2>/dev/null || break
  done | LC_ALL=C cmp -n "$total" -- /dev/zero - 2>&1) && return 0
  if [[ $out =~ (byte|char)\ ([0-9]+) ]]; then
    byte=$((BASH_REMATCH[2] - 1))
    for ((i = 0; i < PROBED; i++)); do
      if [ "$byte" -lt "${lens[i]}" ]; then break; fi
      byte=$((byte - lens[i]))
    done
    NONZERO_AT="the bytes at offset ${offs[i]} (${PROBE_WHAT[${offs[i]}]}) are not zeros"
  else
    NONZERO_AT="the probed regions could not all be read ($out)"
  fi
  return 1
}

probe
PROBED=0
case $PROBE_RC in
  0) ;;
  2)
    # blkid found no signature: trainctl formats only a volume it created empty, whose
    # start, end and spare-superblock places all read as zeros.
    if findmnt -rn -S "$DEV" >/dev/null 2>&1; then
      fail "$DEV is mounted but blkid finds no filesystem on it; not formatting"
    fi
    [ "$MAY_FORMAT" = true ] || refuse "$HOLDS_DATA" "$NOT_CREATED_EMPTY"
    device_reads_as_zeros || refuse "$HOLDS_DATA" "blkid finds no signature on $DEV, \
but $NONZERO_AT: a filesystem whose primary superblock is \
damaged may still be recoverable (e2fsck -b, xfs_repair), so it is not formatted"
    case $FILESYSTEM in
      xfs) run_logged "$LOG" mkfs.xfs -q "$DEV" ;;
      ext4) run_logged "$LOG" mkfs.ext4 -q "$DEV" ;;
    esac
    FORMATTED=true
    probe
    [ "$PROBE_RC" = 0 ] || fail "blkid cannot read the filesystem just made on $DEV" "${PROBE_OUT:-}"
    ;;
  8) refuse "$HOLDS_DATA" "blkid finds more than one signature on $DEV (ambivalent probe)" ;;
  *) fail "blkid could not probe $DEV (exit code $PROBE_RC); not formatting" "${PROBE_OUT:-}" ;;
esac
if [ -z "$FSTYPE" ]; then
  if [ -n "$PTTYPE" ]; then
    refuse "$HOLDS_DATA" "$DEV holds a $PTTYPE partition table; trainctl mounts whole-device \
filesystems only and never formats it"
  fi
  refuse "$HOLDS_DATA" "$DEV holds a signature blkid does not name as a filesystem"
fi
case $FSTYPE in
  xfs | ext4 | ext3 | ext2) ;;
  swap | crypto_* | LVM* | *_member | *raid* | bcache | drbd | VMFS*)
    refuse "$HOLDS_DATA" "$DEV holds a $FSTYPE signature (not a filesystem trainctl mounts)" ;;
  *) refuse "$DEV holds a $FSTYPE filesystem, which trainctl does not mount; not formatting" ;;
esac
[ -n "$UUID" ] || fail "the $FSTYPE filesystem on $DEV has no UUID"

# The device is larger than its filesystem after an EBS size increase. An ext4 filesystem
# that is not mounted yet is checked and grown offline (online growing needs CAP_SYS_RESOURCE),
# for a read-only mount too: read_only is about the mount, the grow writes only metadata.
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

if [ "$FSTYPE" != xfs ] && ! findmnt -rn -S "$DEV" >/dev/null 2>&1; then
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
# A read-only mount is remounted read-write for the grow only, so no grow is left pending.
fs_bytes MEASURED
fs_size=$MEASURED
if [ "$fs_size" -gt 0 ] && [ $((dev_size - fs_size)) -ge "$GROW_SLACK" ]; then
  if [ "$READ_ONLY" = true ]; then run_logged "$LOG" mount -o remount,rw "$TARGET"; fi
  grow_rc=0
  case $FSTYPE in
    xfs) xfs_growfs -d "$TARGET" >>"$LOG" 2>&1 || grow_rc=$? ;;
    *) resize2fs "$DEV" >>"$LOG" 2>&1 || grow_rc=$? ;;
  esac
  if [ "$READ_ONLY" = true ]; then run_logged "$LOG" mount -o remount,ro "$TARGET"; fi
  [ "$grow_rc" = 0 ] || fail "growing the filesystem on $DEV failed with exit code $grow_rc" \
    "$(log_tail "$LOG")"
  fs_bytes NEW_SIZE
  [ "$NEW_SIZE" -gt "$fs_size" ] || fail "growing the filesystem on $DEV did not change its size" \
    "$(log_tail "$LOG")"
  fs_size=$NEW_SIZE
  GROWN=true
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
field_b may_format "$MAY_FORMAT"
field_n probed_regions "$PROBED"
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

#!/usr/bin/env bash
# trainctl: unmount a volume's mount point (if mounted) and drop its fstab entry. Idempotent.
set -euo pipefail
# >>> params
VOLUME_ID=''
MOUNT_PATH=''
# <<< params
# >>> lib
# shellcheck source=lib.sh
. "${BASH_SOURCE[0]%/*}/lib.sh"
# <<< lib

[[ $VOLUME_ID =~ ^vol-[0-9a-zA-Z]+$ ]] || fail "not a volume id" "$VOLUME_ID"
check_abs_path "mount path" "$MOUNT_PATH"
[ "$MOUNT_PATH" != / ] || fail "refusing to unmount /"

host_path TARGET "$MOUNT_PATH"
host_path FSTAB /etc/fstab
FSTAB=${TRAINCTL_FSTAB:-$FSTAB}
UNMOUNTED=false

if in_sandbox; then
  store_root=${TRAINCTL_VOLUME_STORE:-${TRAINCTL_SANDBOX_ROOT:-${TRAINCTL_SANDBOX%/*}}/volumes}
  if [ -L "$TARGET" ]; then
    current=$(readlink -- "$TARGET")
    [ "$current" = "$store_root/$VOLUME_ID" ] ||
      fail "another volume is mounted at $MOUNT_PATH" "$current"
    rm -f -- "$TARGET"
    mkdir -p -- "$TARGET"
    UNMOUNTED=true
  fi
  rm -f -- "$TRAINCTL_SANDBOX/var/lib/trainctl/mounts/$VOLUME_ID"
  fstab_encode ENC "$MOUNT_PATH"
else
  if mm=$(findmnt -rn -M "$TARGET" -o MAJ:MIN 2>/dev/null); then
    mm=${mm//[[:space:]]/}
    find_volume_device "$VOLUME_ID" ""
    if [ -n "$VOLUME_DEVICE" ]; then
      majmin VOL_MM "$VOLUME_DEVICE"
      [ "$VOL_MM" = "$mm" ] || fail "$MOUNT_PATH holds another device, not volume $VOLUME_ID" \
        "$(findmnt -rn -M "$TARGET" -o SOURCE || true)"
    fi
    sync
    run_logged "$TRAINCTL_TMP/umount.log" umount "$TARGET"
    UNMOUNTED=true
  fi
  fstab_encode ENC "$TARGET"
fi
fstab_set "$FSTAB" "$ENC" "" ""

field_s path "$MOUNT_PATH"
field_b unmounted "$UNMOUNTED"
field_b fstab_changed "$FSTAB_CHANGED"
changed=false
if [ "$UNMOUNTED" = true ] || [ "$FSTAB_CHANGED" = true ]; then changed=true; fi
field_b changed "$changed"
finish_ok

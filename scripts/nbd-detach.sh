#!/usr/bin/env bash
# nbd-detach.sh - unmount and disconnect a kernel NBD device attached by nbd-attach.sh.
#
# Usage: nbd-detach.sh /dev/nbdN | MOUNTPOINT
#   Given a mount point, the device mounted there is found, unmounted and disconnected.
#   Given a device, every mount of it is unmounted first.
set -euo pipefail

die() { echo "nbd-detach: $*" >&2; exit 1; }
TARGET=${1:?usage: nbd-detach.sh /dev/nbdN | MOUNTPOINT}
(($# == 1)) || die "expected exactly one argument (see the header of this script)"
((EUID == 0)) || die "must run as root"
command -v nbd-client >/dev/null || die "nbd-client not found: apt-get install nbd-client"

if [[ -b $TARGET ]]; then
  DEVICE=$TARGET
elif [[ -d $TARGET ]] && mountpoint -q -- "$TARGET"; then
  DEVICE=$(findmnt -n -o SOURCE --target "$TARGET") || die "cannot tell which device is mounted on $TARGET"
else
  die "'$TARGET' is neither a block device nor a mount point"
fi
[[ ${DEVICE##*/} == nbd* ]] || die "$DEVICE is not an NBD device"

# Unmount every mount of the device (and its partitions), flushing the filesystem first.
while read -r mnt; do
  [[ -n $mnt ]] || continue
  umount -- "$mnt" || die "cannot unmount $mnt (in use? see: fuser -vm $mnt)"
done < <(findmnt -rn -o TARGET --source "$DEVICE" 2>/dev/null; for p in "$DEVICE"p*; do [[ -b $p ]] && findmnt -rn -o TARGET --source "$p" 2>/dev/null; done)

sync
nbd-client -d "$DEVICE" >&2 || die "nbd-client could not disconnect $DEVICE"
echo "$DEVICE detached"

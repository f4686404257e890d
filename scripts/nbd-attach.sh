#!/usr/bin/env bash
# nbd-attach.sh - attach a tessera NBD export to a kernel block device (Linux, as root).
#
# Usage: nbd-attach.sh [--host HOST] [--port PORT] [--export NAME] [--device /dev/nbdN]
#                      [--mkfs ext4|xfs] [--mount DIR]
#   --host     server address (default 127.0.0.1)
#   --port     server port (default 10809)
#   --export   export (volume) name (default: the server's default export)
#   --device   /dev/nbdN to use (default: the first one not in use)
#   --mkfs     make a filesystem of that type on the device first (DESTROYS its contents)
#   --mount    mount the device on DIR (created if missing)
# Prints the device path on stdout. Undo with nbd-detach.sh.
# Needs: nbd-client (package nbd-client), the nbd kernel module, and mkfs.TYPE for --mkfs.
set -euo pipefail

HOST=127.0.0.1 PORT=10809 EXPORT= DEVICE= MKFS= MOUNT=
die() { echo "nbd-attach: $*" >&2; exit 1; }
while (($#)); do
  case $1 in
    --host) HOST=${2:?--host needs a value}; shift 2 ;;
    --port) PORT=${2:?--port needs a value}; shift 2 ;;
    --export) EXPORT=${2?--export needs a value}; shift 2 ;;
    --device) DEVICE=${2:?--device needs a value}; shift 2 ;;
    --mkfs) MKFS=${2:?--mkfs needs a filesystem type}; shift 2 ;;
    --mount) MOUNT=${2:?--mount needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

[[ $PORT =~ ^[0-9]+$ ]] && ((PORT > 0 && PORT < 65536)) || die "port '$PORT' is not a TCP port number"
[[ -z $MKFS || $MKFS =~ ^[a-z0-9]+$ ]] || die "filesystem type '$MKFS' is not a plain name such as ext4"
((EUID == 0)) || die "must run as root (modprobe, nbd-client and mount need it)"
command -v nbd-client >/dev/null || die "nbd-client not found: apt-get install nbd-client"
[[ -z $MKFS ]] || command -v "mkfs.$MKFS" >/dev/null || die "mkfs.$MKFS not found"

if [[ ! -e /sys/module/nbd ]]; then
  modprobe nbd max_part=8 || die "cannot load the nbd kernel module (is it built for this kernel?)"
fi

# A device is free when the kernel reports no server pid for it.
if [[ -z $DEVICE ]]; then
  for sys in /sys/block/nbd*; do
    [[ -e $sys ]] || continue
    if [[ ! -e $sys/pid ]]; then DEVICE=/dev/${sys##*/}; break; fi
  done
  [[ -n $DEVICE ]] || die "no free /dev/nbdN device (detach one, or load nbd with a larger nbds_max)"
fi
[[ -b $DEVICE ]] || die "$DEVICE is not a block device"
[[ ! -e /sys/block/${DEVICE##*/}/pid ]] || die "$DEVICE is already connected"

args=("$HOST" "$PORT" "$DEVICE")
[[ -n $EXPORT ]] && args+=(-N "$EXPORT")
nbd-client "${args[@]}" >&2 || die "nbd-client could not connect to $HOST:$PORT${EXPORT:+ export '$EXPORT'}"

# If anything below fails, leave the device as we found it.
cleanup() { nbd-client -d "$DEVICE" >/dev/null 2>&1 || true; }
trap cleanup ERR

if [[ -n $MKFS ]]; then
  "mkfs.$MKFS" -q "$DEVICE" >&2 2>/dev/null || "mkfs.$MKFS" "$DEVICE" >&2
fi
if [[ -n $MOUNT ]]; then
  mkdir -p -- "$MOUNT"
  mount -- "$DEVICE" "$MOUNT" || die "cannot mount $DEVICE on $MOUNT (no filesystem? try --mkfs ext4)"
fi
trap - ERR
echo "$DEVICE"

#!/usr/bin/env bash
# Runs the README's set-up commands as a new user would: each in its own fresh Debian 12 root made with
# debootstrap (minbase), on a clean clone of HEAD, as root. Prints one line per command: pass or fail, and the time.
#
#   bash tools/fresh_machine_check.sh [demo] [test]     (default: both)
#
#   demo  bash tools/demo.sh    the main job on the embedded tiny model
#   test  bash tools/test.sh    build and run every test
#
# The root takes the host's network settings and nothing else: its apt sources and apt Acquire settings, its CA
# certificates (package access may go through a proxy with a certificate authority of its own), its pip
# configuration and its resolver. Needs root (debootstrap, chroot, mounts). Every root is removed afterwards, also
# when the script is interrupted; a log of each run is kept in $OSS4_FRESH_LOGS (default: a temporary folder).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

[ "$(id -u)" = 0 ] || { echo "fresh_machine_check: needs root (debootstrap, chroot, mounts)" >&2; exit 2; }
commands=("$@")
[ ${#commands[@]} -gt 0 ] || commands=(demo test)
for c in "${commands[@]}"; do
  case "$c" in demo | test) ;; *) echo "fresh_machine_check: unknown command '$c' (demo or test)" >&2; exit 2 ;; esac
done
bash tools/install_deps.sh debootstrap
command -v debootstrap >/dev/null || { echo "fresh_machine_check: debootstrap is not installed" >&2; exit 2; }

# the Debian mirror the host's apt uses (deb822 .sources or a one-line sources.list)
mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
  awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ {print u; exit}')
[ -n "$mirror" ] || mirror=$(grep -h -E '^deb .* bookworm( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
  awk '{for (i = 2; i <= NF; ++i) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}')
mirror=${mirror:-http://deb.debian.org/debian}

logs=${OSS4_FRESH_LOGS:-$(mktemp -d /tmp/oss4-fresh-logs.XXXXXX)}
mkdir -p "$logs"
work=""    # the folder holding the current root
child=""   # the process group of the command running in it

unmount_all() {
  local rootfs=$1 m
  # deepest first; lazily where something still holds a mount
  for m in $(awk -v r="$rootfs/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}

cleanup() {
  if [ -n "$child" ]; then kill -TERM -- "-$child" 2>/dev/null || true; sleep 1; kill -KILL -- "-$child" 2>/dev/null || true; fi
  child=""
  if [ -n "$work" ] && [ -d "$work" ]; then
    unmount_all "$work/root"
    if awk -v r="$work/root/" 'index($2, r) == 1 {found = 1} END {exit !found}' /proc/mounts; then
      echo "fresh_machine_check: $work still has mounts; left in place" >&2
    else
      rm -rf --one-file-system "$work"
    fi
  fi
  work=""
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# copies one host file into the root when the host has it
copy_in() { [ -e "$1" ] && { mkdir -p "$2$(dirname "$1")"; cp -L "$1" "$2$1"; } || true; }

make_root() {
  local rootfs=$1 f
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > "$2" 2>&1
  # network settings: apt sources and Acquire settings, CA certificates, pip configuration, resolver
  rm -f "$rootfs/etc/apt/sources.list"
  copy_in /etc/apt/sources.list "$rootfs"
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do copy_in "$f" "$rootfs"; done
  for f in /etc/apt/apt.conf.d/*; do grep -q 'Acquire::' "$f" 2>/dev/null && copy_in "$f" "$rootfs"; done
  for f in /usr/local/share/ca-certificates/*; do copy_in "$f" "$rootfs"; done
  copy_in /etc/ssl/certs/ca-certificates.crt "$rootfs"
  copy_in /etc/pip.conf "$rootfs"
  copy_in /etc/resolv.conf "$rootfs"
  git clone --quiet --no-local "$repo" "$rootfs/oss4"
  mount -t proc proc "$rootfs/proc"
  mount --rbind /dev "$rootfs/dev"
  mount --make-rslave "$rootfs/dev"
}

run_one() {
  local name=$1 script log start rc=0
  case "$name" in demo) script=tools/demo.sh ;; test) script=tools/test.sh ;; esac
  log=$logs/$name.log
  start=$(date +%s)
  work=$(mktemp -d /var/tmp/oss4-fresh.XXXXXX)
  if ! make_root "$work/root" "$log"; then
    echo "fresh-machine $name (bash $script): fail after $(($(date +%s) - start)) s: the root could not be made (log: $log)"
    tail -n 20 "$log" >&2
    cleanup
    return 1
  fi
  # a clean environment: what a root login on a new machine has, plus the host's proxy settings if any
  local envs=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb)
  local v
  for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do [ -n "${!v:-}" ] && envs+=("$v=${!v}"); done
  setsid chroot "$work/root" /usr/bin/env -i "${envs[@]}" /bin/bash -c "cd /oss4 && bash $script" >> "$log" 2>&1 &
  child=$!
  wait "$child" || rc=$?
  child=""
  local took=$(($(date +%s) - start))
  if [ "$rc" = 0 ]; then
    echo "fresh-machine $name (bash $script): pass in $took s"
  else
    echo "fresh-machine $name (bash $script): fail (exit $rc) after $took s; log: $log"
    tail -n 30 "$log" >&2
  fi
  cleanup
  return "$rc"
}

failed=0
for c in "${commands[@]}"; do run_one "$c" || failed=1; done
exit "$failed"

#!/usr/bin/env bash
# Installs what the end-to-end tests need on this machine and builds the cached
# Debian rootfs of the test host. Idempotent: a second run does nothing.
set -euo pipefail

ROOTFS=${TLSDOCK_E2E_ROOTFS:-/var/cache/tlsdock-e2e/rootfs}
SUITE=${TLSDOCK_E2E_SUITE:-bookworm}
# gcc and libc6-dev: make unit runs go test -race, which needs cgo.
PKGS=(debootstrap systemd-container iproute2 util-linux openssl curl lintian rpm shellcheck socat nginx-light gcc libc6-dev)

need=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
	echo "setup-host: installing ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

sh "$(dirname "$0")/install-pki-tools.sh" # step and step-ca for the real-PKI tests; before the rootfs check, which exits early
if [ -f "$ROOTFS/.tlsdock-complete" ]; then
	exit 0
fi
echo "setup-host: building the test-host rootfs in $ROOTFS (about a minute)"
rm -rf "$ROOTFS.tmp"
mkdir -p "$(dirname "$ROOTFS")"
INCLUDE=systemd,systemd-sysv,dbus,docker.io,iproute2,ca-certificates,curl,openssl,procps
# From Debian 13 (trixie) on, the docker CLI is a package of its own.
case "$SUITE" in
bullseye | bookworm) ;;
*) INCLUDE="$INCLUDE,docker-cli" ;;
esac
debootstrap --variant=minbase \
	--include="$INCLUDE" \
	"$SUITE" "$ROOTFS.tmp" >"$ROOTFS.log" 2>&1 || {
	tail -20 "$ROOTFS.log" >&2
	echo "setup-host: debootstrap failed; the full log is $ROOTFS.log" >&2
	exit 1
}
# The test host needs no login prompts and must boot fast.
chroot "$ROOTFS.tmp" systemctl mask getty@tty1.service console-getty.service systemd-networkd-wait-online.service >/dev/null 2>&1 || true
echo tlsdock-e2e >"$ROOTFS.tmp/etc/hostname"
touch "$ROOTFS.tmp/.tlsdock-complete"
rm -rf "$ROOTFS"
mv "$ROOTFS.tmp" "$ROOTFS"
echo "setup-host: rootfs ready"

#!/usr/bin/env bash
# Installs what the end-to-end tests need on this machine and builds the cached
# Debian rootfs of the test hosts. Idempotent: a second run does nothing.
#
#   setup-host.sh [SUITE...]
#
# builds one rootfs per Debian suite: bookworm in /var/cache/tlsdock-e2e/rootfs,
# every other suite in /var/cache/tlsdock-e2e/rootfs-SUITE (the paths of
# test/e2e/testhost's Suite values). Without arguments: bookworm and trixie,
# what `make test` needs, or the one suite TLSDOCK_E2E_SUITE names. With
# TLSDOCK_E2E_ROOTFS set, it builds TLSDOCK_E2E_SUITE (default bookworm) there
# and nothing else.
set -euo pipefail

CACHE=/var/cache/tlsdock-e2e
# gcc and libc6-dev: make unit runs go test -race, which needs cgo.
# ansible: the Ansible role's test (test/e2e/ansible_test.go) runs
# ansible-playbook from here against test hosts.
PKGS=(debootstrap systemd-container iproute2 util-linux openssl curl lintian rpm shellcheck socat nginx-light gcc libc6-dev ansible)

need=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
	echo "setup-host: installing ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# step and step-ca for the real-PKI tests (built once, cached).
sh "$(dirname "$0")/install-pki-tools.sh"

# build_rootfs SUITE ROOTFS debootstraps SUITE into ROOTFS unless it is there
# (its marker .tlsdock-complete exists). A lock keeps two runs from building
# the same rootfs at once; the second waits and then finds it done.
build_rootfs() {
	local suite=$1 rootfs=$2
	mkdir -p "$(dirname "$rootfs")"
	exec 9>"$rootfs.lock"
	flock 9
	if [ -f "$rootfs/.tlsdock-complete" ]; then
		exec 9>&-
		return 0
	fi
	echo "setup-host: building the $suite test-host rootfs in $rootfs (about a minute)"
	rm -rf "$rootfs.tmp"
	local include=systemd,systemd-sysv,dbus,docker.io,iproute2,ca-certificates,curl,openssl,procps
	# From Debian 13 (trixie) on, the docker CLI is a package of its own.
	case "$suite" in
	bullseye | bookworm) ;;
	*) include="$include,docker-cli" ;;
	esac
	local start=$SECONDS
	debootstrap --variant=minbase \
		--include="$include" \
		"$suite" "$rootfs.tmp" >"$rootfs.log" 2>&1 || {
		tail -20 "$rootfs.log" >&2
		echo "setup-host: debootstrap $suite failed; the full log is $rootfs.log" >&2
		exit 1
	}
	# The test host needs no login prompts and must boot fast. It loads no
	# kernel modules: from systemd 257 (trixie) on, libkmod is loaded with
	# dlopen and minbase lacks it, so systemd-modules-load.service fails
	# ("Failed to initialize libkmod context") and the host is "degraded".
	chroot "$rootfs.tmp" systemctl mask getty@tty1.service console-getty.service systemd-networkd-wait-online.service \
		systemd-modules-load.service >/dev/null 2>&1 || true
	echo tlsdock-e2e >"$rootfs.tmp/etc/hostname"
	touch "$rootfs.tmp/.tlsdock-complete"
	rm -rf "$rootfs"
	mv "$rootfs.tmp" "$rootfs"
	echo "setup-host: $suite rootfs ready ($((SECONDS - start)) s)"
	exec 9>&-
}

# python_debs ROOTFS DIR downloads into DIR the .debs of python3 that the
# rootfs lacks (apt on this machine, with the rootfs's dpkg status): Ansible
# modules need python3 on the host, and the test hosts cannot download.
# Only for a rootfs of this machine's own suite; skipped when DIR is there.
python_debs() {
	local rootfs=$1 dir=$2
	exec 9>"$dir.lock"
	flock 9
	if [ -f "$dir/.tlsdock-complete" ]; then
		exec 9>&-
		return 0
	fi
	# shellcheck disable=SC1091 # this machine's os-release
	if [ "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")" != "$(. "$rootfs/etc/os-release" && echo "${VERSION_CODENAME:-}")" ]; then
		exec 9>&-
		return 0
	fi
	rm -rf "$dir.tmp"
	mkdir -p "$dir.tmp/partial"
	apt-get install --download-only -y -qq \
		-o Dir::State::status="$rootfs/var/lib/dpkg/status" \
		-o Dir::Cache::archives="$dir.tmp" python3 >/dev/null
	rm -rf "$dir.tmp/partial" "$dir.tmp/lock" "$dir"
	touch "$dir.tmp/.tlsdock-complete"
	mv "$dir.tmp" "$dir"
	echo "setup-host: python3 packages for the test hosts in $dir"
	exec 9>&-
}

if [ -n "${TLSDOCK_E2E_ROOTFS:-}" ]; then
	build_rootfs "${TLSDOCK_E2E_SUITE:-bookworm}" "$TLSDOCK_E2E_ROOTFS"
else
	if [ "$#" -eq 0 ]; then
		# shellcheck disable=SC2086 # one code name, or the default two
		set -- ${TLSDOCK_E2E_SUITE:-bookworm trixie}
	fi
	for suite in "$@"; do
		case "$suite" in
		bookworm)
			build_rootfs bookworm "$CACHE/rootfs"
			python_debs "$CACHE/rootfs" "$CACHE/debs-python3-bookworm"
			;;
		*[!a-z]* | '')
			echo "setup-host: suite '$suite': want a Debian code name such as bookworm, trixie or sid" >&2
			exit 2
			;;
		*) build_rootfs "$suite" "$CACHE/rootfs-$suite" ;;
		esac
	done
fi

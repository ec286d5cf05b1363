#!/usr/bin/env bash
# make package-check: lints and inspects the packages that make package built.
# Usage: packaging/check.sh DEB RPM
set -euo pipefail

deb=$1 rpm=$2
cd "$(dirname "$0")/.."
fail() {
	echo "package-check: $*" >&2
	exit 1
}

echo "== shellcheck"
shellcheck -s sh packaging/scripts/*.sh packaging/version.sh packaging/changelog.sh

echo "== lintian $deb"
# lintian warns when it runs as root; that line is not a finding.
lintian --fail-on error,warning --info "$deb" 2>&1 | grep -v 'running with root privileges' || true
lintian --fail-on error,warning "$deb" >/dev/null 2>&1 || fail "lintian reports errors or warnings on $deb (see above)"

echo "== rpm -qpl $rpm"
files=$(rpm -qpl "$rpm")
echo "$files"
for f in /usr/bin/tlsdock /usr/lib/systemd/system/tlsdock.service /etc/tlsdock/tlsdock.conf /usr/share/man/man1/tlsdock.1.gz; do
	grep -qxF "$f" <<<"$files" || fail "$rpm does not contain $f"
done
rpm -qpc "$rpm" | grep -qxF /etc/tlsdock/tlsdock.conf || fail "/etc/tlsdock/tlsdock.conf is not a config file in $rpm"

echo "== rpm -qpR $rpm"
rpm -qpR "$rpm"

echo "== rpm -qp --scripts $rpm"
scripts=$(rpm -qp --scripts "$rpm")
grep -E '^[a-z]+ scriptlet' <<<"$scripts"
# Each scriptlet must be exactly our shared script.
extract() { awk -v h="$1 scriptlet (using /bin/sh):" '$0==h{on=1;next} / scriptlet \(using /{on=0} on' <<<"$scripts"; }
for pair in postinstall:postinstall preuninstall:preremove postuninstall:postremove; do
	# ($(...) drops the blank line rpm prints after each scriptlet.)
	[ "$(cat "packaging/scripts/${pair#*:}.sh")" = "$(extract "${pair%%:*}")" ] ||
		fail "the ${pair%%:*} scriptlet of $rpm is not packaging/scripts/${pair#*:}.sh"
done
echo "package-check: ok"

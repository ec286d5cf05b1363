#!/bin/sh
# tlsdock: deb prerm and rpm %preun (one script for both).
#
# Arguments:
#   deb: remove | upgrade NEW-VERSION | failed-upgrade OLD-VERSION | deconfigure ...
#   rpm: $1 = 0 (erase) or >= 1 (upgrade: the new version is already installed)
#
# On removal it stops and disables tlsdock.service. dockerd is left exactly
# as it is: still serving mutual TLS with the installed certificate. An
# upgrade changes nothing here; the new version's postinstall restarts the
# daemon.
set -eu

UNIT=tlsdock.service

say() { echo "tlsdock: $*"; }

case "${1:-}" in
remove | 0) ;;
*) exit 0 ;;
esac

if [ -z "${DPKG_ROOT:-}" ] && command -v systemctl >/dev/null 2>&1; then
	if [ -d /run/systemd/system ]; then
		systemctl stop "$UNIT" || true
	fi
	systemctl disable --quiet "$UNIT" >/dev/null 2>&1 || true
fi
if [ -f /var/lib/tlsdock/state.json ]; then
	say "$UNIT is stopped and disabled. dockerd keeps serving mutual TLS with its current certificate (no more rotation). To undo the hardening, run 'tlsdock revert' before removing the package (or reinstall tlsdock and run it)."
else
	say "$UNIT is stopped and disabled."
fi
exit 0

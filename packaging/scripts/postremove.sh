#!/bin/sh
# tlsdock: deb postrm and rpm %postun (one script for both).
#
# Arguments:
#   deb: remove | purge | upgrade NEW-VERSION | failed-upgrade OLD-VERSION |
#        abort-install [OLD-VERSION] | abort-upgrade OLD-VERSION | disappear ...
#   rpm: $1 = 0 (erase) or >= 1 (upgrade: the new version is installed)
#
# deb purge removes /var/lib/tlsdock (state and the backup that
# `tlsdock revert` needs) and /etc/tlsdock (the configuration, the
# certificate source /etc/tlsdock/certs and the local CA in /etc/tlsdock/ca).
# rpm has no purge: an erase leaves both directories (rpm saves a modified
# tlsdock.conf as tlsdock.conf.rpmsave) and says how to remove them.
# dockerd's installed certificates in /etc/docker/ssl stay in both cases:
# dockerd's configuration points to them.
set -eu

UNIT=tlsdock.service

say() { echo "tlsdock: $*"; }

reload() {
	if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
		systemctl daemon-reload || true
	fi
}

case "${1:-}" in
remove)
	reload
	;;
0)
	reload
	say "rpm keeps /etc/tlsdock (configuration, certificate source and the local CA) and /var/lib/tlsdock (state and the backup for 'tlsdock revert'). To remove them: rm -rf /etc/tlsdock /var/lib/tlsdock"
	;;
purge)
	ssl=
	if [ -d "${DPKG_ROOT:-}/etc/docker/ssl" ]; then
		ssl=" dockerd keeps the certificates installed in /etc/docker/ssl."
	fi
	rm -rf "${DPKG_ROOT:-}/var/lib/tlsdock" "${DPKG_ROOT:-}/etc/tlsdock" "${DPKG_ROOT:-}/run/tlsdock"
	rm -f "${DPKG_ROOT:-}/etc/systemd/system/multi-user.target.wants/$UNIT"
	say "purged /var/lib/tlsdock (state and the backup for 'tlsdock revert') and /etc/tlsdock (configuration, /etc/tlsdock/certs and the local CA in /etc/tlsdock/ca: client certificates it issued can no longer be renewed).$ssl"
	;;
*) ;;
esac
exit 0

#!/bin/sh
# tlsdock: deb postinst and rpm %post (one script for both).
#
# Arguments:
#   deb: configure [MOST-RECENTLY-CONFIGURED-VERSION]   (empty: first install)
#        abort-upgrade NEW-VERSION | abort-remove | abort-deconfigure ...
#   rpm: $1 = 1 (install) or >= 2 (upgrade)
#
# What it does, when systemd runs:
#   1. daemon-reload and enable tlsdock.service (a masked unit is left alone).
#   2. On an upgrade, stop the daemon (it must not rotate while we provision).
#   3. Ask `tlsdock config` whether the host is configured: exit 0 when
#      tlsdock.conf sets generate or certs, 7 when it does not but the last
#      `tlsdock provision` run by hand recorded its source and settings in
#      state.json, 5 when neither but /etc/tlsdock/certs holds a complete
#      set, 6 when none of these, 8 when `tlsdock revert` put the host back,
#      2 when tlsdock.conf has a bad setting (its message names the file
#      and line). When configured, run `tlsdock provision` (with --certs
#      /etc/tlsdock/certs on 5; on 0 and 7 naming no source, so that it
#      keeps what the record holds and the file does not set, as
#      tlsdock.service does). It is idempotent: when nothing changed it
#      restarts nothing, docker included. A reverted host is not
#      provisioned again: only a provision by hand does that. A bad
#      tlsdock.conf is reported and not provisioned, like provision's exit
#      2 (nothing on the host changed).
#   4. Start tlsdock.service when provision succeeded, or when the daemon ran
#      before the upgrade.
# Without systemd (a chroot, an image build, a container, dpkg --root) it
# only enables the unit for the next boot, prints one line and exits 0.
#
# Exit status: 0, except when provision exits 4 (it failed and its rollback
# failed too: docker may be down). Then the package stays unconfigured, so
# that apt and configuration management report the failure; after fixing the
# host, `dpkg --configure -a` runs this again. Provision exit codes 1, 2
# (bad input, nothing changed) and 3 (failed and rolled back: docker runs its
# previous configuration), and a bad tlsdock.conf, leave the package
# installed with a message that says what to do, because the host is as it
# was before.
set -eu

UNIT=tlsdock.service
CONF=/etc/tlsdock/tlsdock.conf
CERTS=/etc/tlsdock/certs
STATE=/var/lib/tlsdock/state.json

say() { echo "tlsdock: $*"; }

action=
case "${1:-}" in
configure)
	action=install
	if [ -n "${2:-}" ]; then
		action=upgrade
	fi
	;;
abort-upgrade | abort-remove | abort-deconfigure)
	action=abort
	;;
[0-9]*)
	action=install
	if [ "$1" -ge 2 ] 2>/dev/null; then
		action=upgrade
	fi
	;;
*)
	exit 0
	;;
esac

if [ -n "${DPKG_ROOT:-}" ] || [ ! -d /run/systemd/system ]; then
	if [ -z "${DPKG_ROOT:-}" ] && command -v systemctl >/dev/null 2>&1; then
		systemctl enable "$UNIT" >/dev/null 2>&1 || true
	fi
	say "systemd is not running (chroot, image build or container): not provisioning; run 'tlsdock provision' on the booted host"
	exit 0
fi

systemctl daemon-reload || true
if [ "$(systemctl is-enabled "$UNIT" 2>/dev/null || true)" = masked ]; then
	say "$UNIT is masked: not provisioning and not starting it"
	exit 0
fi
systemctl enable --quiet "$UNIT" || say "could not enable $UNIT"

if [ "$action" = abort ]; then
	# A removal or upgrade was undone: bring the daemon back if the host
	# was provisioned.
	if [ -f "$STATE" ]; then
		systemctl start "$UNIT" || say "could not start $UNIT: see journalctl -u $UNIT"
	fi
	exit 0
fi

was_active=no
if [ "$action" = upgrade ] && systemctl is-active --quiet "$UNIT"; then
	was_active=yes
	systemctl stop "$UNIT" || true
fi

# tlsdock reads tlsdock.conf with the same merge as provision and run; its
# table of settings is not needed here, its errors are.
configured=0
tlsdock config >/dev/null || configured=$?

rc=none
case "$configured" in
0)
	say "provisioning with the settings in $CONF"
	rc=0
	tlsdock provision || rc=$?
	;;
7)
	say "provisioning with the source and settings recorded by the last 'tlsdock provision' run by hand ($STATE)"
	rc=0
	tlsdock provision || rc=$?
	;;
5)
	say "provisioning with the certificate set in $CERTS"
	rc=0
	tlsdock provision --certs "$CERTS" || rc=$?
	;;
6) ;;
8)
	say "'tlsdock revert' put this host back: not provisioning it again. To put dockerd behind mutual TLS again, run 'tlsdock provision'"
	rc=reverted
	;;
2)
	say "$CONF has a bad setting (see the message above): not provisioning"
	rc=badconf
	;;
*)
	say "'tlsdock config' exited $configured (see the message above): not provisioning"
	rc=badconf
	;;
esac

start=no
case "$rc" in
none)
	if [ "$was_active" = yes ]; then
		start=yes
	elif [ "$action" = install ]; then
		say "not configured yet, nothing on the host changed. To put dockerd behind mutual TLS, set 'generate = true' in $CONF or put ca.pem, server-cert.pem and server-key.pem into $CERTS, then run 'tlsdock provision' and 'systemctl start $UNIT'"
	fi
	;;
0)
	start=yes
	;;
reverted) ;;
badconf)
	say "nothing on the host changed. Fix $CONF as the message above says, then run 'tlsdock provision' and 'systemctl start $UNIT'"
	;;
2)
	say "provision exited 2: bad input, nothing on the host changed. Fix $CONF or $CERTS as the message above says, then run 'tlsdock provision' and 'systemctl start $UNIT'"
	;;
3)
	say "provision exited 3: it failed and rolled back, docker runs its previous configuration. Fix the cause above, then run 'tlsdock provision' and 'systemctl start $UNIT'"
	;;
4)
	say "provision exited 4: it failed and the rollback failed too. The host needs attention: check 'systemctl status docker' and 'tlsdock status' (the backup is in /var/lib/tlsdock/journal.json); then run 'dpkg --configure -a' (deb) or 'tlsdock provision'"
	exit 1
	;;
*)
	say "provision exited $rc (see the message above); nothing else was done. Fix the cause, then run 'tlsdock provision' and 'systemctl start $UNIT'"
	;;
esac
if [ "$rc" != none ] && [ "$rc" != 0 ] && [ "$was_active" = yes ]; then
	# The daemon ran before the upgrade: keep it running, it retries (on
	# a reverted host it waits for a provision by hand).
	start=yes
fi

if [ "$start" = yes ]; then
	if systemctl start "$UNIT"; then
		say "$UNIT is running"
	else
		say "could not start $UNIT: see 'journalctl -u $UNIT'"
	fi
fi
exit 0

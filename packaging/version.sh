#!/bin/sh
# Prints the package version for deb and rpm, made from VERSION ($1, normally
# `git describe --tags --always --dirty`):
#   v1.2.3                  -> 1.2.3
#   v1.2.3-4-gabc1234       -> 1.2.3+git4.abc1234
#   v1.2.3-4-gabc1234-dirty -> 1.2.3+git4.abc1234.dirty
#   abc1234 (no tags)       -> 0.0.0~gitN.abc1234   (N = commits in HEAD)
#   abc1234-dirty           -> 0.0.0~gitN.abc1234.dirty
#   v1.0.0-rc1              -> 1.0.0~rc1           (sorts before 1.0.0)
# Anything else keeps only [0-9A-Za-z.+~] ('-' becomes '~', '_' becomes '.')
# and gets the prefix 0.0.0~ unless it starts with a digit. The result sorts the same
# way in dpkg and rpm, and contains no '-' (the deb and rpm release
# separator).
set -eu

v=${1:-}
if [ -z "$v" ]; then
	v=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
fi
v=${v#v}

dirty=
case "$v" in
*-dirty)
	dirty=.dirty
	v=${v%-dirty}
	;;
esac

if printf '%s\n' "$v" | grep -Eq '^[0-9][0-9A-Za-z.+~_-]*-[0-9]+-g[0-9a-f]+$'; then
	# TAG-N-gHASH
	hash=${v##*-g}
	rest=${v%-g*}
	n=${rest##*-}
	tag=$(printf '%s' "${rest%-*}" | tr -- '-_' '~.' | tr -cd '0-9A-Za-z.+~')
	printf '%s+git%s.%s%s\n' "$tag" "$n" "$hash" "$dirty"
elif printf '%s\n' "$v" | grep -Eq '^[0-9a-f]{7,40}$' && git rev-parse -q --verify "$v^{commit}" >/dev/null 2>&1; then
	# A bare commit: the repository has no tags yet.
	n=$(git rev-list --count "$v" 2>/dev/null || echo 0)
	printf '0.0.0~git%s.%s%s\n' "$n" "$v" "$dirty"
else
	s=$(printf '%s%s' "$v" "$dirty" | tr -- '-_' '~.' | tr -cd '0-9A-Za-z.+~')
	case "$s" in
	[0-9]*) printf '%s\n' "$s" ;;
	*) printf '0.0.0~%s\n' "${s:-dev}" ;;
	esac
fi

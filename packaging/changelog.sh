#!/bin/sh
# Prints the Debian changelog (installed as /usr/share/doc/tlsdock/changelog.gz)
# for package version $1: one entry for this build, listing the subjects of
# the last commits. The date is $SOURCE_DATE_EPOCH (default: the last
# commit's), so that a build is reproducible.
# A word repeated in a subject ("at at") is said once: lintian reads it as a
# typo in the changelog.
set -eu

version=${1:?usage: changelog.sh VERSION}
maintainer=${MAINTAINER:-tlsdock maintainers <maintainers@tlsdock.invalid>}
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

printf 'tlsdock (%s) unstable; urgency=medium\n\n' "$version"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
printf '  * Built from git commit %s. Recent changes:\n' "$commit"
git log -n 20 --no-merges --format='%s' 2>/dev/null | cut -c1-70 | sed -E 's/\<([[:alpha:]]+) \1\>/\1/g; s/^/    - /'
printf '\n -- %s  %s\n' "$maintainer" "$(LC_ALL=C date -u -R -d "@$epoch")"

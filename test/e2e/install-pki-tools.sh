#!/bin/sh
# install-pki-tools.sh: builds smallstep's step and step-ca, the real PKI the
# end-to-end tests (stepca_test.go, realpki.sh) renew certificates with, into
# /var/cache/tlsdock-e2e/bin. The first run takes about four minutes on two
# cores; later runs see both binaries at the pinned version and do nothing.
# Needs Go and the module proxy (or a module cache that holds the modules).
set -eu
BIN=${STEP_BIN:-/var/cache/tlsdock-e2e/bin}
VERSION=${STEP_VERSION:-v0.30.2}

# have NAME prints nothing and succeeds when $BIN/NAME was built from the
# pinned version: the Go build info names the main module's version.
have() {
	[ -x "$BIN/$1" ] || return 1
	go version -m "$BIN/$1" 2>/dev/null | awk -v v="$VERSION" '$1 == "mod" && $3 == v { ok = 1 } END { exit !ok }'
}

build() { # build NAME PACKAGE
	if have "$1"; then
		return 0
	fi
	if ! command -v go >/dev/null 2>&1; then
		echo "install-pki-tools: go is not on PATH; it is needed to build $1 $VERSION into $BIN" >&2
		exit 1
	fi
	echo "install-pki-tools: building $1 $VERSION into $BIN (a few minutes)"
	mkdir -p "$BIN"
	# GOFLAGS from the environment (for example -mod=vendor) must not reach a
	# build outside this module.
	GOFLAGS='' GOBIN="$BIN" CGO_ENABLED=0 go install "$2@$VERSION"
	have "$1" || {
		echo "install-pki-tools: $BIN/$1 was built but does not report $VERSION" >&2
		exit 1
	}
}

build step github.com/smallstep/cli/cmd/step
build step-ca github.com/smallstep/certificates/cmd/step-ca

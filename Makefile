# tlsdock — see README.md. `make test` installs what the tests need
# (Debian packages, the cached test-host rootfs) and runs every test.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.Version=$(VERSION)
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: all build test unit e2e e2e-setup lint demo clean package package-check

# Build tools live in their own modules under packaging/tools, out of the
# product's go.mod: nfpm (packaging/tools) and golangci-lint
# (packaging/tools/lint). Each is built into TOOLS_BIN and rebuilt only when
# its module's go.mod or go.sum changes.
TOOLS_BIN ?= bin/tools
NFPM := $(TOOLS_BIN)/nfpm
GOLANGCI_LINT := $(TOOLS_BIN)/golangci-lint

$(NFPM): packaging/tools/go.mod packaging/tools/go.sum
	$(GO) -C packaging/tools build -o $(abspath $@) github.com/goreleaser/nfpm/v2/cmd/nfpm

$(GOLANGCI_LINT): packaging/tools/lint/go.mod packaging/tools/lint/go.sum
	$(GO) -C packaging/tools/lint build -o $(abspath $@) github.com/golangci/golangci-lint/v2/cmd/golangci-lint

# Packages (see packaging/): the version for deb and rpm is VERSION sanitised
# by packaging/version.sh (0.0.0~gitN.HASH while there are no tags).
DIST ?= dist
PKG_VERSION ?= $(shell packaging/version.sh '$(VERSION)')
PKG_STAGE := $(DIST)/stage
MAINTAINER ?= tlsdock maintainers <maintainers@tlsdock.invalid>
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
DEB := $(DIST)/tlsdock_$(PKG_VERSION)_amd64.deb
RPM := $(DIST)/tlsdock-$(PKG_VERSION)-1.x86_64.rpm

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/tlsdock ./cmd/tlsdock

lint: $(GOLANGCI_LINT)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...
	$(GOLANGCI_LINT) run --allow-parallel-runners ./...
	$(GOLANGCI_LINT) run --allow-parallel-runners --build-tags tlsdock_gendocs ./cmd/tlsdock

# The gen-docs command is built only for make package (-tags tlsdock_gendocs).
# The proxy's tests run without -race too: under it a proxy connection
# reads and writes through the syscall package (proxy/sysconn_race.go),
# without it through the raw system calls that tlsdock ships with.
unit:
	$(GO) test -race -count=1 ./...
	$(GO) test -count=1 ./proxy
	$(GO) test -race -count=1 -tags tlsdock_gendocs -run 'GenDocs' ./cmd/tlsdock

# The packages the tests need and the cached rootfs of each Debian suite
# that e2e boots: bookworm (Debian 12) and trixie (Debian 13).
e2e-setup:
	bash test/e2e/setup-host.sh

# The end-to-end suite boots real Debian hosts (systemd + dockerd) in
# systemd-nspawn; it needs root. Its core tests run on both suites
# (TestCoreTrixie, test/e2e/suite_test.go).
e2e: e2e-setup
	TLSDOCK_E2E=1 $(GO) test -count=1 -p 1 -timeout 60m ./test/e2e/...

# A smoke test on Debian sid (root; not part of test): builds the sid rootfs
# on first use, then provisions a host in daemon-json, dropin and proxy mode,
# talks to it with the docker CLI over mutual TLS and reverts it, then runs
# the core tests that start no container: sid's hosts boot with nspawn's
# unified cgroup hierarchy, where runc starts none.
.PHONY: e2e-sid
e2e-sid:
	bash test/e2e/setup-host.sh sid
	TLSDOCK_E2E=1 TLSDOCK_E2E_SID=1 $(GO) test -count=1 -p 1 -v -timeout 20m -run '^TestSidSmoke$$' ./test/e2e/

# The whole fault sweep (root, test hosts as in e2e): each scenario of
# test/e2e/fault_sweep_test.go SIGKILLed at 20 delays across its run and
# power-lost at 10, each kill followed by the recovery checks. e2e runs a
# fixed few of these points. TLSDOCK_FAULT_SEED repeats the random delays.
.PHONY: fault-sweep
fault-sweep: e2e-setup
	TLSDOCK_E2E=1 TLSDOCK_FAULT_SWEEP=full $(GO) test -count=1 -p 1 -v -timeout 120m -run '^(TestFaultSweep|TestPowerLoss)$$' ./test/e2e/

# e2e-setup first: it also installs the C toolchain that -race in unit needs.
test: e2e-setup lint unit fuzz e2e

# Go fuzz targets, each for FUZZTIME. A crasher is written to the package's
# testdata/fuzz/<target>/ and stays there as a regression seed that every
# `go test` runs.
# Each target runs a fixed number of inputs (about 10-30 s each here), not a
# wall-clock -fuzztime: Go 1.26's fuzz coordinator can fail a duration-bound
# run with a bare "context deadline exceeded" and no crasher under CPU load
# (golang/go#75804, fixed in Go 1.27). -timeout bounds a stuck worker.
FUZZTIME ?= 100000x
FUZZ_TARGETS := certstore:FuzzParseSet daemonjson:FuzzParseRender daemonjson:FuzzMergeKeepsUnknownKeys \
	systemd:FuzzParseCommand systemd:FuzzReadServiceDropIn proxy:FuzzMatch proxy:FuzzFraming \
	proxy:FuzzPlainResponse proxy:FuzzAuditJSON proxy:FuzzWriteHeader

.PHONY: fuzz
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t#*:}; \
		echo "fuzz ./$$pkg $$fn for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -timeout 10m ./$$pkg; \
	done

# dist/tlsdock_VERSION_amd64.deb and dist/tlsdock-VERSION-1.x86_64.rpm, with
# nfpm pinned in packaging/tools/go.mod.
package: $(NFPM)
	rm -rf $(PKG_STAGE) && mkdir -p $(PKG_STAGE)
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '-s -w -X main.Version=$(PKG_VERSION)' -o $(PKG_STAGE)/tlsdock ./cmd/tlsdock
	CGO_ENABLED=0 $(GO) build -trimpath -tags tlsdock_gendocs -ldflags '-X main.Version=$(PKG_VERSION)' -o $(DIST)/tlsdock-gendocs ./cmd/tlsdock
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(DIST)/tlsdock-gendocs gen-docs --dir $(PKG_STAGE) >/dev/null
	rm -f $(DIST)/tlsdock-gendocs
	gzip -9n $(PKG_STAGE)/man/*.1
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) MAINTAINER='$(MAINTAINER)' packaging/changelog.sh '$(PKG_VERSION)' | gzip -9n >$(PKG_STAGE)/changelog.gz
	rm -f $(DEB) $(RPM)
	export PKG_VERSION='$(PKG_VERSION)' PKG_STAGE='$(PKG_STAGE)' MAINTAINER='$(MAINTAINER)' SOURCE_DATE_EPOCH='$(SOURCE_DATE_EPOCH)'; \
	$(NFPM) package --config packaging/nfpm.yaml --packager deb --target '$(DEB)' && \
	$(NFPM) package --config packaging/nfpm.yaml --packager rpm --target '$(RPM)'

# lintian on the .deb, rpm queries on the .rpm, shellcheck on the scripts.
package-check: package
	bash packaging/check.sh '$(DEB)' '$(RPM)'

demo: e2e-setup
	$(GO) run ./test/e2e/demo

# Benchmarks against the recipes tlsdock replaces (root; test hosts as in
# e2e). bench writes docs/benchmarks.md (about 8 minutes); bench-quick runs
# one iteration of each and only prints the table.
.PHONY: bench bench-quick
bench: e2e-setup
	$(GO) run ./test/e2e/bench -out docs/benchmarks.md

bench-quick: e2e-setup
	$(GO) run ./test/e2e/bench -quick -out ''

# Fleet numbers (root; test hosts as in e2e): TestFleetStepCA, which e2e
# runs once, measuring each number 5 times on a step-ca and three Docker
# hosts: from a renewal kicked on every host to the last one serving it
# (daemon-json and proxy), and from step ca revoke to the last proxy
# refusing the client. Its log ends with a table of the min, median and
# max of each (about 4 minutes).
.PHONY: bench-fleet
bench-fleet: e2e-setup
	TLSDOCK_E2E=1 TLSDOCK_FLEET_ROUNDS=5 $(GO) test -count=1 -p 1 -v -timeout 40m -run '^TestFleetStepCA$$' ./test/e2e/

clean:
	rm -rf bin dist

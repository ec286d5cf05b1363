# tlsdock — see README.md. `make test` installs what the tests need
# (Debian packages, the cached test-host rootfs) and runs every test.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.Version=$(VERSION)
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: all build test unit e2e e2e-setup lint demo clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/tlsdock ./cmd/tlsdock

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -count=1 ./...

e2e-setup:
	bash test/e2e/setup-host.sh

# The end-to-end suite boots real Debian hosts (systemd + dockerd) in
# systemd-nspawn; it needs root.
e2e: e2e-setup
	TLSDOCK_E2E=1 $(GO) test -count=1 -p 1 -timeout 60m ./test/e2e/...

test: lint unit e2e

demo: e2e-setup
	$(GO) run ./test/e2e/demo

clean:
	rm -rf bin dist

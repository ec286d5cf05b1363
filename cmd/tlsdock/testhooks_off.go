//go:build !tlsdock_testhooks

package main

import "github.com/tlsdock/tlsdock/agent"

// testHooks is a no-op in the shipped binary: the test hooks (testhooks.go)
// exist only in builds with -tags tlsdock_testhooks.
func testHooks(*agent.Options, string) {}

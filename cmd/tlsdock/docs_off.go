//go:build !tlsdock_gendocs

package main

import "github.com/spf13/cobra"

// addGenDocs adds nothing to the shipped binary: gen-docs exists only in
// the build that make package runs it from (-tags tlsdock_gendocs,
// docs.go).
func addGenDocs(*cobra.Command, *Env) {}

// Command tlsdock puts dockerd's TCP API behind mutual TLS and keeps it
// there.
package main

import (
	"os"
	"runtime"
)

func main() {
	os.Exit(Run(Env{Stdout: os.Stdout, Stderr: os.Stderr, MaxProcs: runtime.GOMAXPROCS}, os.Args[1:]))
}

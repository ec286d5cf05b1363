// Command tiny is the only program of the image that testhost imports into
// test hosts (nothing can be pulled there). It is built static and runs as
// the image's entrypoint /tiny:
//
//	tiny sleep       sleep until SIGTERM or SIGINT (a container to keep running)
//	tiny cat         copy stdin to stdout (exercises docker run -i: attach and hijack)
//	tiny echo ARGS   print ARGS separated by spaces and a newline
//	tiny read FILE   print FILE (what a container can see)
//	tiny ln OLD NEW  replace NEW (a file or a whole tree) by a symlink to OLD
package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tiny sleep | cat | echo ARGS... | read FILE | ln OLD NEW")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "sleep":
		// As PID 1 of a container it would ignore SIGTERM without a handler,
		// and docker stop would wait 10 s.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
	case "cat":
		if _, err := io.Copy(os.Stdout, os.Stdin); err != nil {
			fmt.Fprintln(os.Stderr, "tiny cat:", err)
			os.Exit(1)
		}
	case "echo":
		fmt.Println(strings.Join(os.Args[2:], " "))
	case "read":
		if len(os.Args) != 3 {
			fmt.Fprintln(os.Stderr, "usage: tiny read FILE")
			os.Exit(2)
		}
		b, err := os.ReadFile(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "tiny read:", err)
			os.Exit(1)
		}
		os.Stdout.Write(b)
	case "ln":
		if len(os.Args) != 4 {
			fmt.Fprintln(os.Stderr, "usage: tiny ln OLD NEW")
			os.Exit(2)
		}
		if err := os.RemoveAll(os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "tiny ln:", err)
			os.Exit(1)
		}
		if err := os.Symlink(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "tiny ln:", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintf(os.Stderr, "tiny: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

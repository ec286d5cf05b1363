// Package daemonjson loads, merges and renders dockerd's configuration file,
// /etc/docker/daemon.json.
//
// A [Doc] keeps the top-level keys in file order and their values as raw JSON,
// so keys tlsdock does not know about survive a load-modify-render cycle
// unchanged (numbers such as 1e3 or very large integers are never reformatted).
// [Doc.Render] is pure: it returns the bytes to write, and writing them
// (atomically) is the caller's job. Nothing in this package writes files;
// [Load] only reads.
//
// The package also knows dockerd's rules that tlsdock must respect: the TLS
// keys and "hosts" it owns ([SetTLS], [RemoveTLS]), listeners that would serve
// without client verification ([InsecureTCPHosts]), and directives given both
// as a dockerd flag and in the file, which make dockerd refuse to start
// ([Conflicts]).
package daemonjson

package testhost

import (
	"archive/tar"
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

//go:embed tiny/main.go
var tinySource []byte

var tinyCache struct {
	sync.Mutex
	tar []byte
}

// tinyTar builds tiny (a static binary, CGO_ENABLED=0) once per process and
// returns a tar that holds it as /tiny.
func tinyTar(ctx context.Context) ([]byte, error) {
	tinyCache.Lock()
	defer tinyCache.Unlock()
	if tinyCache.tar != nil {
		return tinyCache.tar, nil
	}
	dir, err := os.MkdirTemp("", "testhost-tiny-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), tinySource, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module tiny\n\ngo 1.21\n"), 0o644); err != nil {
		return nil, err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", "tiny", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH,
		"GOWORK=off", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building tiny: %w: %s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "tiny"))
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	if err := tw.WriteHeader(&tar.Header{Name: "tiny", Mode: 0o755, Size: int64(len(bin)), ModTime: mtime, Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	tinyCache.tar = buf.Bytes()
	return tinyCache.tar, nil
}

// ImportTinyImage imports an image called name into the host's docker: one
// static binary, /tiny, as its entrypoint (see package tiny: "sleep", "cat",
// "echo ARGS"). Nothing can be pulled inside a test host.
func (h *Host) ImportTinyImage(ctx context.Context, name string) error {
	t, err := tinyTar(ctx)
	if err != nil {
		return err
	}
	_, _, err = h.Exec(ctx, bytes.NewReader(t), "docker", "import", "--change", `ENTRYPOINT ["/tiny"]`, "-", name)
	return err
}

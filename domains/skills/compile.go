package skills

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// ErrNoGo is returned when no go toolchain can be found to build a skill.
var ErrNoGo = errors.New("skills: go toolchain not found (need `go` on PATH or under GOROOT/bin)")

// CompileTimeout bounds one `go build` of a skill.
var CompileTimeout = 3 * time.Minute

// goTool returns the go command: `go` on PATH, else runtime.GOROOT()/bin/go.
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if root := runtime.GOROOT(); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", ErrNoGo
}

// cacheDir is where built .wasm files are kept, keyed by source hash:
// os.UserCacheDir()/hyperspace/skills, else a directory under os.TempDir.
func cacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "hyperspace", "skills")
	}
	return filepath.Join(os.TempDir(), "hyperspace-skills")
}

// buildLocks serialises builds of the same source within the process.
var buildLocks sync.Map // hash -> *sync.Mutex

// CompileError is a `go build` failure of skill source (the candidate's
// fault, not the worker's).
type CompileError struct {
	Output string
}

func (e *CompileError) Error() string { return "skills: go build failed:\n" + e.Output }

// compile builds src (a single-file main package using only the standard
// library) to a wasip1 module and returns its bytes. Results are cached on
// disk by a hash of the source and the toolchain version, so each variant
// is built once. cached reports a cache hit.
func compile(ctx context.Context, src []byte) (wasm []byte, cached bool, err error) {
	goBin, err := goTool()
	if err != nil {
		return nil, false, err
	}
	h := sha256.New()
	fmt.Fprintf(h, "skill-v1\x00%s\x00wasip1/wasm\x00", runtime.Version())
	h.Write(src)
	key := hex.EncodeToString(h.Sum(nil))[:32]
	dir := cacheDir()
	path := filepath.Join(dir, key+".wasm")

	mu, _ := buildLocks.LoadOrStore(key, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
		return b, true, nil
	}

	tmp, err := os.MkdirTemp("", "skill-build-")
	if err != nil {
		return nil, false, fmt.Errorf("skills: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "go.mod"), []byte("module skill\n\ngo 1.21\n"), 0o644); err != nil {
		return nil, false, fmt.Errorf("skills: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "skill.go"), src, 0o644); err != nil {
		return nil, false, fmt.Errorf("skills: %w", err)
	}
	bctx, cancel := context.WithTimeout(ctx, CompileTimeout)
	defer cancel()
	out := filepath.Join(tmp, "skill.wasm")
	cmd := exec.CommandContext(bctx, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = tmp
	cmd.Env = buildEnv()
	msg, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		if bctx.Err() != nil {
			return nil, false, fmt.Errorf("skills: go build timed out after %v", CompileTimeout)
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, false, &CompileError{Output: strings.ReplaceAll(string(msg), tmp+string(filepath.Separator), "")}
		}
		return nil, false, fmt.Errorf("skills: go build: %w", err)
	}
	wasm, err = os.ReadFile(out)
	if err != nil {
		return nil, false, fmt.Errorf("skills: %w", err)
	}
	// Best effort: a read-only cache only costs rebuilds.
	if os.MkdirAll(dir, 0o755) == nil {
		if f, err := os.CreateTemp(dir, key+".*.tmp"); err == nil {
			_, werr := f.Write(wasm)
			cerr := f.Close()
			if werr == nil && cerr == nil {
				_ = os.Rename(f.Name(), path)
			} else {
				_ = os.Remove(f.Name())
			}
		}
	}
	return wasm, false, nil
}

// buildEnv is the environment of `go build`: the caller's, minus anything
// that could redirect the build, plus the wasip1 target.
func buildEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOOS", "GOARCH", "GOFLAGS", "GOWORK", "CGO_ENABLED", "GOTOOLCHAIN", "GO111MODULE", "GOPROXY":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOWORK=off",
		"GOFLAGS=-mod=mod -buildvcs=false", "GOTOOLCHAIN=local", "GO111MODULE=on", "GOPROXY=off")
	if os.Getenv("HOME") == "" && os.Getenv("GOCACHE") == "" {
		env = append(env, "GOCACHE="+filepath.Join(os.TempDir(), "hyperspace-skills-gocache"))
	}
	return env
}

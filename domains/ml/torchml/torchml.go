// Package torchml is the PyTorch backend of the ML domain: it trains and
// evaluates the same character-level GPT as package ml (same layout, init,
// AdamW, clipping, LR schedule, loss and evaluation windows) with torch on
// CPU or CUDA, driven from Go through a persistent Python worker process
// (hs_torch.py, embedded here; scripts/torch/hs_torch.py links to it).
//
// Parameters and optimizer state cross between the backends in the
// hyperspace tensor format (package internal/tensor, fp32 sections). Token
// data crosses as files of uint8 ids; the batches are drawn in Go
// (ml.SampleOffsets), so both backends train on exactly the same windows
// and the same batch-sampler state continues across backends.
//
// Agreement: the two backends start from bit-identical weights and see the
// same batches, but torch computes in float32 with its own reduction
// orders (the Go trainer does some reductions in float64), so parameters
// agree closely, not bit for bit (see the package tests for the measured
// tolerances). On CPU the torch backend is deterministic for a fixed
// thread count.
//
// Installation: scripts/ensure-torch.sh (run by scripts/test.sh) installs
// Debian's python3-torch and selects OpenBLAS (OpenMP build) as the BLAS.
package torchml

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

//go:embed hs_torch.py
var script []byte

// Script returns the embedded worker script (hs_torch.py).
func Script() []byte { return bytes.Clone(script) }

// Protocol is the request protocol version the driver speaks (the
// script's PROTOCOL).
const Protocol = 1

// ErrNoTorch reports that no Python interpreter with torch was found.
var ErrNoTorch = errors.New("torchml: no python3 with torch found")

// ErrWorker marks a failure of the worker process itself (it died, could
// not start, or broke the protocol), as opposed to an error a request
// reported.
var ErrWorker = errors.New("torchml: worker process failed")

// Backend drives one persistent Python worker process. The zero value is
// not usable; build it with Find or fill in Python and Script. Requests
// are served one at a time (concurrent calls queue). The process starts on
// the first request and is restarted by the next request after it dies or
// a request's context is cancelled. Close stops it.
type Backend struct {
	// Python is the interpreter (with torch importable).
	Python string
	// Script is the path of hs_torch.py.
	Script string
	// Device is "auto" (cuda when torch.cuda.is_available(), else cpu),
	// "cpu" or "cuda[:i]"; empty means auto.
	Device string
	// Threads, when > 0, sets torch's intra-op threads (default: the
	// cores the worker may run on).
	Threads int
	// Env holds extra environment variables ("K=V") for the worker (the
	// worker gets OMP_WAIT_POLICY=PASSIVE unless the environment sets it).
	Env []string

	pid atomic.Int64 // the running worker's pid, 0 when none

	mu     sync.Mutex // serialises requests and guards the fields below
	proc   *worker
	hello  map[string]any
	tmpDir string
	files  map[string]string // content hash -> token file path
	nextID int
}

// worker is one running Python process.
type worker struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	stderr *tailBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // exit error, valid after done
}

// Find locates a Python interpreter with torch and the worker script.
//
// Python: $HYPERSPACE_PYTHON when set (it must import torch), else the
// first of /usr/bin/python3 (where Debian's python3-torch installs), then
// python3 and python on PATH, that imports torch. The probe result is
// cached per process.
//
// Script: $HYPERSPACE_TORCH_SCRIPT when set, else the embedded copy
// written once to the user cache directory
// (~/.cache/hyperspace/torch/hs_torch-<hash>.py; the temp directory when
// there is no cache directory).
//
// Device: $HYPERSPACE_TORCH_DEVICE, default auto.
func Find() (*Backend, error) {
	py, err := findPython()
	if err != nil {
		return nil, err
	}
	sc, err := scriptPath()
	if err != nil {
		return nil, err
	}
	dev := os.Getenv("HYPERSPACE_TORCH_DEVICE")
	if dev == "" {
		dev = "auto"
	}
	return &Backend{Python: py, Script: sc, Device: dev}, nil
}

var (
	probeMu    sync.Mutex
	probeCache = map[string]error{}
)

// probe reports whether py imports torch (cached).
func probe(py string) error {
	probeMu.Lock()
	defer probeMu.Unlock()
	if err, ok := probeCache[py]; ok {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c", "import torch, sys; sys.stdout.write(torch.__version__)").CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%s: %v: %s", py, err, lastLines(string(out), 2))
	}
	probeCache[py] = err
	return err
}

func findPython() (string, error) {
	if py := os.Getenv("HYPERSPACE_PYTHON"); py != "" {
		if err := probe(py); err != nil {
			return "", fmt.Errorf("%w: HYPERSPACE_PYTHON=%s does not import torch: %v", ErrNoTorch, py, err)
		}
		return py, nil
	}
	var tried []string
	seen := map[string]bool{}
	cands := []string{"/usr/bin/python3"}
	for _, name := range []string{"python3", "python"} {
		if p, err := exec.LookPath(name); err == nil {
			cands = append(cands, p)
		}
	}
	for _, py := range cands {
		if seen[py] {
			continue
		}
		seen[py] = true
		if _, err := os.Stat(py); err != nil {
			continue
		}
		err := probe(py)
		if err == nil {
			return py, nil
		}
		tried = append(tried, err.Error())
	}
	if len(tried) == 0 {
		tried = append(tried, "no python3 found")
	}
	return "", fmt.Errorf("%w (run scripts/ensure-torch.sh, or set HYPERSPACE_PYTHON): %s", ErrNoTorch, strings.Join(tried, "; "))
}

func scriptPath() (string, error) {
	if p := os.Getenv("HYPERSPACE_TORCH_SCRIPT"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("torchml: HYPERSPACE_TORCH_SCRIPT: %w", err)
		}
		return p, nil
	}
	sum := sha256.Sum256(script)
	name := "hs_torch-" + hex.EncodeToString(sum[:6]) + ".py"
	var dirs []string
	if d, err := os.UserCacheDir(); err == nil {
		dirs = append(dirs, filepath.Join(d, "hyperspace", "torch"))
	}
	dirs = append(dirs, filepath.Join(os.TempDir(), "hyperspace-torch"))
	var errs []error
	for _, dir := range dirs {
		p := filepath.Join(dir, name)
		if b, err := os.ReadFile(p); err == nil && bytes.Equal(b, script) {
			return p, nil
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		tmp, err := os.CreateTemp(dir, name+".*")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_, werr := tmp.Write(script)
		cerr := tmp.Close()
		if werr == nil && cerr == nil {
			werr = os.Rename(tmp.Name(), p)
		}
		if werr != nil || cerr != nil {
			os.Remove(tmp.Name())
			errs = append(errs, errors.Join(werr, cerr))
			continue
		}
		return p, nil
	}
	return "", fmt.Errorf("torchml: writing the worker script: %w", errors.Join(errs...))
}

// Close stops the worker process and removes the backend's temporary
// files. The backend may be used again afterwards (it starts a new
// process).
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var err error
	if b.proc != nil {
		err = b.proc.stop()
		b.proc = nil
	}
	if b.tmpDir != "" {
		os.RemoveAll(b.tmpDir)
		b.tmpDir, b.files = "", nil
	}
	return err
}

// Info returns the worker's environment (torch version, device, threads,
// BLAS; the "hello" line of hs_torch.py), starting the worker if needed.
func (b *Backend) Info(ctx context.Context) (map[string]any, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ensure(ctx); err != nil {
		return nil, err
	}
	out := map[string]any{}
	for k, v := range b.hello {
		out[k] = v
	}
	return out, nil
}

// PID is the worker's process id (0 when none is running). It does not
// wait for a request in progress.
func (b *Backend) PID() int { return int(b.pid.Load()) }

// ensure starts the worker when none is running. b.mu is held.
func (b *Backend) ensure(ctx context.Context) error {
	if b.proc != nil && !b.proc.exited() {
		return nil
	}
	if b.proc != nil {
		b.proc = nil
	}
	if b.Python == "" || b.Script == "" {
		return fmt.Errorf("%w: Backend needs Python and Script (use Find)", ErrWorker)
	}
	cmd := exec.Command(b.Python, "-u", b.Script, "serve")
	cmd.Env = os.Environ()
	if os.Getenv("OMP_WAIT_POLICY") == "" {
		// OpenMP threads that spin at barriers collapse (10x and worse)
		// when the cores are shared with other busy processes; passive
		// waiting costs little on an idle machine. Set OMP_WAIT_POLICY to
		// override.
		cmd.Env = append(cmd.Env, "OMP_WAIT_POLICY=PASSIVE")
	}
	cmd.Env = append(cmd.Env, b.Env...)
	if b.Threads > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("HYPERSPACE_TORCH_THREADS=%d", b.Threads))
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrWorker, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrWorker, err)
	}
	w := &worker{cmd: cmd, stdin: stdin, out: bufio.NewReaderSize(stdout, 1<<16), stderr: &tailBuffer{max: 64 << 10}, done: make(chan struct{})}
	cmd.Stderr = w.stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: starting %s %s: %v", ErrWorker, b.Python, b.Script, err)
	}
	b.pid.Store(int64(cmd.Process.Pid))
	go func() {
		w.err = cmd.Wait()
		b.pid.CompareAndSwap(int64(cmd.Process.Pid), 0)
		close(w.done)
	}()
	b.proc = w
	// The worker announces itself once torch is imported.
	line, err := b.readLine(ctx, w)
	if err != nil {
		return err
	}
	var hello map[string]any
	if err := json.Unmarshal(line, &hello); err != nil || hello["hello"] != true {
		w.kill()
		b.proc = nil
		return fmt.Errorf("%w: unexpected first line %q", ErrWorker, truncate(string(line), 200))
	}
	if p, _ := hello["protocol"].(float64); int(p) != Protocol {
		w.kill()
		b.proc = nil
		return fmt.Errorf("%w: %s speaks protocol %v, driver %d", ErrWorker, b.Script, hello["protocol"], Protocol)
	}
	b.hello = hello
	return nil
}

// readLine reads one protocol line from w, killing the process when ctx
// ends first. b.mu is held.
func (b *Backend) readLine(ctx context.Context, w *worker) ([]byte, error) {
	type result struct {
		line []byte
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := w.out.ReadBytes('\n')
		ch <- result{line, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			// The process closed stdout: it is exiting.
			select {
			case <-w.done:
			case <-time.After(5 * time.Second):
				w.kill()
				<-w.done
			}
			b.proc = nil
			return nil, fmt.Errorf("%w: %s exited (%v)%s", ErrWorker, filepath.Base(b.Script), w.err, w.stderrTail())
		}
		return r.line, nil
	case <-ctx.Done():
		w.kill()
		<-w.done
		<-ch
		b.proc = nil
		return nil, ctx.Err()
	}
}

func (w *worker) exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

func (w *worker) kill() {
	if w.cmd.Process != nil {
		_ = w.cmd.Process.Kill()
	}
}

// stop closes stdin (the worker exits at EOF) and waits a little, then
// kills it.
func (w *worker) stop() error {
	_ = w.stdin.Close()
	select {
	case <-w.done:
		return nil
	case <-time.After(5 * time.Second):
		w.kill()
		<-w.done
		return nil
	}
}

func (w *worker) stderrTail() string {
	s := strings.TrimSpace(w.stderr.String())
	if s == "" {
		return ""
	}
	return "; stderr: " + lastLines(s, 8)
}

// response is the common part of a worker reply.
type response struct {
	ID        *int   `json:"id"`
	OK        bool   `json:"ok"`
	Error     string `json:"error"`
	Traceback string `json:"traceback"`
	Progress  *struct {
		Done int     `json:"done"`
		Loss float64 `json:"loss"`
	} `json:"progress"`
}

// RequestError is an error the worker reported for a request (the
// process stays up).
type RequestError struct {
	Op        string
	Message   string // "Type: message" of the Python exception
	Traceback string // the full Python traceback
}

func (e *RequestError) Error() string {
	tb := lastLines(strings.TrimSpace(e.Traceback), 4)
	if tb == "" {
		return fmt.Sprintf("torchml: %s: %s", e.Op, e.Message)
	}
	return fmt.Sprintf("torchml: %s: %s\n%s", e.Op, e.Message, tb)
}

// call sends one request and decodes the final response into out (may be
// nil). progress, when set, receives the worker's progress lines.
func (b *Backend) call(ctx context.Context, req map[string]any, out any, progress func(done int, loss float64)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.callLocked(ctx, req, out, progress)
}

func (b *Backend) callLocked(ctx context.Context, req map[string]any, out any, progress func(done int, loss float64)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.ensure(ctx); err != nil {
		return err
	}
	w := b.proc
	b.nextID++
	id := b.nextID
	req["id"] = id
	if _, ok := req["device"]; !ok && b.Device != "" {
		req["device"] = b.Device
	}
	line, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("torchml: encoding request: %w", err)
	}
	if _, err := w.stdin.Write(append(line, '\n')); err != nil {
		w.kill()
		<-w.done
		b.proc = nil
		return fmt.Errorf("%w: writing request: %v%s", ErrWorker, err, w.stderrTail())
	}
	op, _ := req["op"].(string)
	for {
		line, err := b.readLine(ctx, w)
		if err != nil {
			return err
		}
		var r response
		if err := json.Unmarshal(line, &r); err != nil {
			w.kill()
			<-w.done
			b.proc = nil
			return fmt.Errorf("%w: bad response line %q", ErrWorker, truncate(string(line), 200))
		}
		if r.ID == nil || *r.ID != id {
			if !r.OK && r.Error != "" {
				return &RequestError{Op: op, Message: r.Error, Traceback: r.Traceback}
			}
			continue // stale line of an earlier request
		}
		if r.Progress != nil {
			if progress != nil {
				progress(r.Progress.Done, r.Progress.Loss)
			}
			continue
		}
		if !r.OK {
			return &RequestError{Op: op, Message: r.Error, Traceback: r.Traceback}
		}
		if out != nil {
			if err := json.Unmarshal(line, out); err != nil {
				return fmt.Errorf("torchml: decoding %s response: %w", op, err)
			}
		}
		return nil
	}
}

// Raw sends a request object (op and its fields) to the worker and
// returns the response as JSON (for tools and tests).
func (b *Backend) Raw(ctx context.Context, req map[string]any) (json.RawMessage, error) {
	var out json.RawMessage
	if err := b.call(ctx, req, &out, nil); err != nil {
		return nil, err
	}
	return out, nil
}

// tempDir returns the backend's directory for request files. b.mu is held.
func (b *Backend) tempDirLocked() (string, error) {
	if b.tmpDir == "" {
		d, err := os.MkdirTemp("", "hyperspace-torchml-")
		if err != nil {
			return "", fmt.Errorf("torchml: %w", err)
		}
		b.tmpDir = d
		b.files = map[string]string{}
	}
	return b.tmpDir, nil
}

// tokenFile writes data to a content-named file once and returns its
// path (the worker caches the loaded tensor by path). b.mu is held.
func (b *Backend) tokenFileLocked(data []uint8) (string, error) {
	dir, err := b.tempDirLocked()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	key := hex.EncodeToString(sum[:12])
	if p, ok := b.files[key]; ok {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if len(b.files) >= 32 { // bound the cache (DiLoCo shards are few)
		for k, p := range b.files {
			os.Remove(p)
			delete(b.files, k)
		}
	}
	p := filepath.Join(dir, "tokens-"+key+".u8")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		return "", fmt.Errorf("torchml: %w", err)
	}
	b.files[key] = p
	return p, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

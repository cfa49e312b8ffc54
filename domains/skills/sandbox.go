package skills

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// Limits bound what one skill invocation (one test case) may use.
type Limits struct {
	// MemoryPages caps the module's linear memory in 64 KiB wasm pages.
	MemoryPages uint32
	// Timeout is the wall-clock limit of one invocation.
	Timeout time.Duration
	// MaxStdout and MaxStderr cap the captured output in bytes; a module
	// writing more fails the case (the write returns an error).
	MaxStdout, MaxStderr int
}

// DefaultLimits are the sandbox limits Evaluate uses: 64 MiB of linear
// memory, 2 s of wall time, 1 MiB of stdout and 64 KiB of stderr per case.
var DefaultLimits = Limits{MemoryPages: 1024, Timeout: 2 * time.Second, MaxStdout: 1 << 20, MaxStderr: 64 << 10}

// compilationCache holds wazero's native code for every module compiled in
// this process, so a skill is compiled to machine code once.
var compilationCache = wazero.NewCompilationCache()

// Outcome is how one invocation ended.
type Outcome int

const (
	// Exited means the module called proc_exit or returned from _start.
	Exited Outcome = iota
	// TimedOut means the per-case wall-clock limit stopped it.
	TimedOut
	// Trapped means it trapped (unreachable, out-of-bounds, memory cap on
	// a grow the runtime could not survive, ...).
	Trapped
	// OutputOverflow means it wrote more than the stdout/stderr caps.
	OutputOverflow
)

func (o Outcome) String() string {
	switch o {
	case Exited:
		return "exited"
	case TimedOut:
		return "timed out"
	case Trapped:
		return "trapped"
	case OutputOverflow:
		return "output too large"
	}
	return "unknown"
}

// RunResult is what one sandboxed invocation produced.
type RunResult struct {
	Outcome  Outcome
	ExitCode uint32 // meaningful when Outcome == Exited
	Stdout   []byte
	Stderr   []byte
	Err      string // trap message, if any
}

// sandbox is a compiled skill ready to be instantiated once per case. It is
// safe for concurrent use.
type sandbox struct {
	rt     wazero.Runtime
	mod    wazero.CompiledModule
	limits Limits
}

// newSandbox compiles wasm under limits. The runtime mounts no filesystem,
// offers no sockets, passes no environment, uses wazero's deterministic
// fake clocks and random source, and closes a module whose context is done.
func newSandbox(ctx context.Context, wasm []byte, limits Limits) (*sandbox, error) {
	cfg := wazero.NewRuntimeConfig().
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(limits.MemoryPages).
		WithCompilationCache(compilationCache)
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("skills: wasi: %w", err)
	}
	mod, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("skills: compile wasm: %w", err)
	}
	if err := checkImports(mod); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	return &sandbox{rt: rt, mod: mod, limits: limits}, nil
}

// checkImports rejects modules that import anything but WASI preview 1.
func checkImports(mod wazero.CompiledModule) error {
	for _, f := range mod.ImportedFunctions() {
		if m, name, _ := f.Import(); m != wasi_snapshot_preview1.ModuleName {
			return fmt.Errorf("skills: module imports %s.%s; only %s is available (build with GOOS=wasip1 GOARCH=wasm)", m, name, wasi_snapshot_preview1.ModuleName)
		}
	}
	return nil
}

func (s *sandbox) Close(ctx context.Context) error { return s.rt.Close(ctx) }

// Run instantiates the module with stdin as its standard input and runs
// _start to completion or until a limit stops it. Only a cancelled parent
// ctx is returned as an error; every misbehaviour of the module is reported
// in the RunResult.
func (s *sandbox) Run(ctx context.Context, stdin []byte) (RunResult, error) {
	if err := ctx.Err(); err != nil {
		return RunResult{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, s.limits.Timeout)
	defer cancel()
	// Overflowing a cap stops the module at once (via its context).
	stdout := &cappedBuffer{max: s.limits.MaxStdout, stop: cancel}
	stderr := &cappedBuffer{max: s.limits.MaxStderr, stop: cancel}
	mc := wazero.NewModuleConfig().
		WithName(""). // anonymous: many instances may run at once
		WithArgs("skill").
		WithStdin(bytes.NewReader(stdin)).
		WithStdout(stdout).
		WithStderr(stderr)
	m, err := s.rt.InstantiateModule(cctx, s.mod, mc)
	if m != nil {
		m.Close(context.Background())
	}
	res := RunResult{Stdout: stdout.buf.Bytes(), Stderr: stderr.buf.Bytes()}
	var exit *sys.ExitError
	switch {
	case ctx.Err() != nil:
		return RunResult{}, ctx.Err()
	case stdout.overflow || stderr.overflow:
		res.Outcome = OutputOverflow
	case cctx.Err() != nil:
		res.Outcome = TimedOut
	case err == nil:
		res.Outcome = Exited
	case errors.As(err, &exit):
		res.Outcome, res.ExitCode = Exited, exit.ExitCode()
	default:
		res.Outcome, res.Err = Trapped, err.Error()
	}
	return res, nil
}

// cappedBuffer accepts up to max bytes; the write that would exceed it
// fails and calls stop. Writes come from the module's single thread.
type cappedBuffer struct {
	buf      bytes.Buffer
	max      int
	overflow bool
	stop     func()
}

var errOutputCap = errors.New("output limit exceeded")

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if c.buf.Len()+len(p) > c.max {
		c.overflow = true
		if c.stop != nil {
			c.stop()
		}
		return 0, errOutputCap
	}
	return c.buf.Write(p)
}

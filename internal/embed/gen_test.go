package embed

import (
	"math/rand/v2"
	"strings"
)

// generateDocs makes n synthetic documents of about 30 tokens: each draws
// mostly from one of 20 topics' 150-word vocabularies (Zipf-like, so some
// words are frequent) and partly from 2,000 general words.
func generateDocs(n int, seed uint64) []string {
	rng := rand.New(rand.NewPCG(seed, 99))
	word := func(prefix string, i int) string {
		var b strings.Builder
		b.WriteString(prefix)
		for i++; i > 0; i /= 26 {
			b.WriteByte(byte('a' + i%26))
		}
		return b.String()
	}
	const topics, perTopic, general = 20, 150, 2000
	zipf := rand.NewZipf(rng, 1.1, 2, perTopic-1)
	docs := make([]string, n)
	var b strings.Builder
	for d := range docs {
		b.Reset()
		topic := rng.IntN(topics)
		for range 25 + rng.IntN(11) {
			if rng.Float64() < 0.7 {
				b.WriteString(word("t"+string(rune('a'+topic)), int(zipf.Uint64())))
			} else {
				b.WriteString(word("g", rng.IntN(general)))
			}
			b.WriteByte(' ')
		}
		docs[d] = b.String()
	}
	return docs
}

package kvprefix

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/fraud/merkle"
)

const placeDomain = "hyperspace-kv-place/v1"

// score is the rendezvous weight of peer p for chunk i of the set root.
func score(root merkle.Hash, i int, p peer.ID) uint64 {
	h := sha256.New()
	h.Write([]byte(placeDomain))
	h.Write(root[:])
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(i))
	h.Write(b[:])
	h.Write([]byte(p))
	var sum [32]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

// Rank orders pool by rendezvous weight for chunk i of the set root,
// highest first (ties by peer id): the chunk's preferred holders. pool is
// not modified.
func Rank(root merkle.Hash, i int, pool []peer.ID) []peer.ID {
	type ranked struct {
		p peer.ID
		s uint64
	}
	rs := make([]ranked, len(pool))
	for j, p := range pool {
		rs[j] = ranked{p, score(root, i, p)}
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		if c := cmp.Compare(b.s, a.s); c != 0 {
			return c
		}
		return cmp.Compare(a.p, b.p)
	})
	out := make([]peer.ID, len(rs))
	for j, r := range rs {
		out[j] = r.p
	}
	return out
}

// Place assigns each of m's N chunks to replicas (<= 0: 1) distinct peers
// of candidates (the peers with the storage capability), deterministically:
// rendezvous hashing of (root, chunk index, peer id) with bounded load, so
// every peer holds about N·replicas/peers chunks (at most
// ceil(N·replicas/peers) for one replica; with more, a chunk whose
// remaining share is only on peers that already hold it goes to the least
// loaded other peer), and the same inputs always give the same placement. self (may be empty)
// is left out unless the other candidates are too few: fewer than
// replicas, or so few that losing one of them would lose more than N-K
// chunks. Duplicates in candidates count once. No candidates: an empty map.
func Place(m Manifest, candidates []peer.ID, self peer.ID, replicas int) map[int][]peer.ID {
	if replicas <= 0 {
		replicas = 1
	}
	var others []peer.ID
	seen := map[peer.ID]bool{}
	for _, p := range candidates {
		if p == "" || p == self || seen[p] {
			continue
		}
		seen[p] = true
		others = append(others, p)
	}
	pool := others
	if self != "" && (len(others) < replicas || len(others) == 0 || (m.N+len(others)-1)/len(others) > m.N-m.K) {
		pool = append(pool, self)
	}
	out := map[int][]peer.ID{}
	if len(pool) == 0 || m.N <= 0 {
		return out
	}
	r := min(replicas, len(pool))
	ranked := make([][]peer.ID, m.N)
	for i := range m.N {
		ranked[i] = Rank(m.Root, i, pool)
	}
	// Replica by replica, each chunk takes its best-ranked peer that does
	// not hold it yet and is below the round's even share; when none is
	// (bounded load can strand the last chunks), the least loaded one.
	load := map[peer.ID]int{}
	for rep := range r {
		capacity := (m.N*(rep+1) + len(pool) - 1) / len(pool)
		for i := range m.N {
			var best peer.ID
			for _, p := range ranked[i] {
				if slices.Contains(out[i], p) {
					continue
				}
				if load[p] < capacity {
					best = p
					break
				}
				if best == "" || load[p] < load[best] {
					best = p
				}
			}
			out[i] = append(out[i], best)
			load[best]++
		}
	}
	return out
}

// Package pulse is the trust economy's accounting: the signed records of a
// pulse round (a node's presence with its capability claims and work
// receipts, a validator's verdict), the points formula, what counts as a
// unit of work in each domain, and the robust combination of validators'
// verdicts. It is pure: the PulseRoundWorkflow (package workflows) and its
// activities gather presences, ask validators, and write the ledger.
//
// Points per round for a node (the original's formula):
//
//	presence = 10 × U(t) × (1 + Σ weights of its verified capabilities)
//	work     = units × rate × U(t)              (per verified work receipt)
//	U(t)     = 1 + 0.2·ln(1 + t/12)              (t: hours of continuous presence)
//
// A capability claim earns only once a validator verified it in that round.
package pulse

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/jcs"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// Version of the pulse records.
const Version = 1

// The nine capabilities a node can claim.
const (
	CapInference     = "inference"
	CapResearch      = "research"
	CapProxy         = "proxy"
	CapStorage       = "storage"
	CapEmbedding     = "embedding"
	CapMemory        = "memory"
	CapOrchestration = "orchestration"
	CapValidation    = "validation"
	CapRelay         = "relay"
)

// Weights are the capabilities' point weights (the bonus fraction each
// verified capability adds to presence points).
var Weights = map[string]float64{
	CapResearch: 0.12, CapInference: 0.10, CapProxy: 0.08, CapStorage: 0.06,
	CapEmbedding: 0.05, CapMemory: 0.05, CapOrchestration: 0.05, CapValidation: 0.04, CapRelay: 0.03,
}

// Capabilities lists the nine in weight order.
var Capabilities = []string{CapResearch, CapInference, CapProxy, CapStorage, CapEmbedding, CapMemory, CapOrchestration, CapValidation, CapRelay}

// Limits on a presence.
const (
	MaxReceipts = 64 // work receipts one presence may name
	MaxStrLen   = 256
)

// Formula constants.
const (
	BasePoints = 10.0
	// DefaultWorkRate is points per work unit.
	DefaultWorkRate = 1.0
)

// Errors of verification.
var (
	ErrBadID        = errors.New("pulse: id does not match the canonical record")
	ErrBadSignature = errors.New("pulse: invalid signature")
	ErrNodeMismatch = errors.New("pulse: record not signed by the node it names")
	ErrInvalid      = errors.New("pulse: invalid record")
)

// Presence is a node's signed statement for one round: I am here, I claim
// these capabilities, I did this work. Signed with the node's own libp2p
// key (Node is its peer id, which inlines the key).
type Presence struct {
	Version   int    `json:"version"`
	Kind      string `json:"kind"` // "pulse-presence"
	Node      string `json:"node"` // libp2p peer id
	PublicKey string `json:"publicKey"`
	Signer    string `json:"signer"` // identity id of PublicKey
	// Round is the round number: floor(unix ms / IntervalMs).
	Round      int64 `json:"round"`
	IntervalMs int64 `json:"intervalMs"`
	Timestamp  int64 `json:"timestamp"` // unix ms, inside the round
	// Capabilities claimed (sorted, a subset of the nine).
	Capabilities []string `json:"capabilities"`
	// Receipts are ids of work receipts the node's agents published since
	// its last presence (at most MaxReceipts).
	Receipts []string `json:"receipts"`
}

// SignedPresence is a presence with its id and signature.
type SignedPresence struct {
	ID        string   `json:"id"`
	Presence  Presence `json:"presence"`
	Signature string   `json:"signature"`
}

// NodeVerdict is one validator's judgement of one node in a round.
type NodeVerdict struct {
	Node     string `json:"node"`
	Presence string `json:"presence"` // the presence id judged
	// Present: the signature verified and the node answered a liveness
	// probe (a nonce signed with its key) during validation.
	Present bool `json:"present"`
	// Verified capabilities (probes passed); Failed ones with a reason.
	Verified []string          `json:"verified"`
	Failed   map[string]string `json:"failed"`
	Work     []WorkCheck       `json:"work"`
}

// WorkCheck is a validator's check of one work receipt.
type WorkCheck struct {
	Receipt string  `json:"receipt"`
	Domain  string  `json:"domain"`
	Units   float64 `json:"units"`
	OK      bool    `json:"ok"`
	// How: "signature" (integrity only), "rerun" (re-executed, same value),
	// "spot-check" (ML: re-trained, bit-identical).
	How    string `json:"how"`
	Reason string `json:"reason,omitempty"`
}

// Verdict is a validator's signed judgement of a round.
type Verdict struct {
	Version   int    `json:"version"`
	Kind      string `json:"kind"` // "pulse-verdict"
	Round     int64  `json:"round"`
	Validator string `json:"validator"` // the validator node's peer id
	PublicKey string `json:"publicKey"`
	Signer    string `json:"signer"`
	Timestamp int64  `json:"timestamp"`
	// Nodes are sorted by node id.
	Nodes []NodeVerdict `json:"nodes"`
}

// SignedVerdict is a verdict with its id and signature.
type SignedVerdict struct {
	ID        string  `json:"id"`
	Verdict   Verdict `json:"verdict"`
	Signature string  `json:"signature"`
}

// RoundOf is the round containing unix millisecond ms.
func RoundOf(ms, intervalMs int64) int64 {
	if intervalMs <= 0 {
		return 0
	}
	return ms / intervalMs
}

// ValidCapability reports whether c is one of the nine.
func ValidCapability(c string) bool { _, ok := Weights[c]; return ok }

// NormalizeCapabilities sorts and dedupes caps and rejects unknown ones.
func NormalizeCapabilities(caps []string) ([]string, error) {
	out := []string{}
	for _, c := range caps {
		c = strings.TrimSpace(strings.ToLower(c))
		if c == "" {
			continue
		}
		if !ValidCapability(c) {
			return nil, fmt.Errorf("unknown capability %q (want one of %s)", c, strings.Join(Capabilities, ", "))
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (p Presence) normalized() Presence {
	if p.Capabilities == nil {
		p.Capabilities = []string{}
	}
	if p.Receipts == nil {
		p.Receipts = []string{}
	}
	return p
}

// Check verifies a presence's own invariants (not its signature).
func (p Presence) Check() error {
	if p.Kind != "pulse-presence" || p.Version != Version {
		return fmt.Errorf("%w: kind %q version %d", ErrInvalid, p.Kind, p.Version)
	}
	if p.IntervalMs < 1000 || p.IntervalMs > 24*3600*1000 {
		return fmt.Errorf("%w: interval %d ms out of range 1 s..24 h", ErrInvalid, p.IntervalMs)
	}
	if RoundOf(p.Timestamp, p.IntervalMs) != p.Round {
		return fmt.Errorf("%w: timestamp %d is not in round %d", ErrInvalid, p.Timestamp, p.Round)
	}
	if len(p.Receipts) > MaxReceipts {
		return fmt.Errorf("%w: %d receipts, at most %d", ErrInvalid, len(p.Receipts), MaxReceipts)
	}
	if len(p.Node) > MaxStrLen || p.Node == "" {
		return fmt.Errorf("%w: node id", ErrInvalid)
	}
	for _, r := range p.Receipts {
		if len(r) != 64 || strings.Trim(r, "0123456789abcdef") != "" {
			return fmt.Errorf("%w: receipt id %.80q", ErrInvalid, r)
		}
	}
	caps, err := NormalizeCapabilities(p.Capabilities)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if !slices.Equal(caps, p.normalized().Capabilities) {
		return fmt.Errorf("%w: capabilities not sorted and unique", ErrInvalid)
	}
	return nil
}

// SignPresence stamps p with k (the node key as an identity) and signs it.
func SignPresence(p Presence, k *identity.Key) (SignedPresence, error) {
	if k == nil {
		return SignedPresence{}, errors.New("pulse: nil key")
	}
	p.Version, p.Kind = Version, "pulse-presence"
	p.PublicKey = base64.StdEncoding.EncodeToString(k.Public())
	p.Signer = k.ID()
	caps, err := NormalizeCapabilities(p.Capabilities)
	if err != nil {
		return SignedPresence{}, err
	}
	p.Capabilities = caps
	p = p.normalized()
	if err := p.Check(); err != nil {
		return SignedPresence{}, err
	}
	id, sig, err := sign(p, k)
	if err != nil {
		return SignedPresence{}, err
	}
	return SignedPresence{ID: id, Presence: p, Signature: sig}, nil
}

// Verify checks the id, the signature, the signer and the invariants.
// bound reports whether a public key is the key of the node id (package
// admission's BoundToNode); it is a parameter to keep this package free of
// libp2p.
func (s SignedPresence) Verify(bound func(node string, pub ed25519.PublicKey) bool) error {
	p := s.Presence.normalized()
	if err := verify(s.ID, s.Signature, p.PublicKey, p.Signer, p); err != nil {
		return err
	}
	pub, _ := base64.StdEncoding.DecodeString(p.PublicKey)
	if bound != nil && !bound(p.Node, pub) {
		return fmt.Errorf("%w: presence names %s", ErrNodeMismatch, p.Node)
	}
	return p.Check()
}

// SignVerdict stamps v with the validator's key and signs it.
func SignVerdict(v Verdict, k *identity.Key) (SignedVerdict, error) {
	v.Version, v.Kind = Version, "pulse-verdict"
	v.PublicKey = base64.StdEncoding.EncodeToString(k.Public())
	v.Signer = k.ID()
	v = v.normalized()
	id, sig, err := sign(v, k)
	if err != nil {
		return SignedVerdict{}, err
	}
	return SignedVerdict{ID: id, Verdict: v, Signature: sig}, nil
}

func (v Verdict) normalized() Verdict {
	if v.Nodes == nil {
		v.Nodes = []NodeVerdict{}
	}
	sort.Slice(v.Nodes, func(i, j int) bool { return v.Nodes[i].Node < v.Nodes[j].Node })
	for i := range v.Nodes {
		n := &v.Nodes[i]
		if n.Verified == nil {
			n.Verified = []string{}
		}
		sort.Strings(n.Verified)
		if n.Failed == nil {
			n.Failed = map[string]string{}
		}
		if n.Work == nil {
			n.Work = []WorkCheck{}
		}
	}
	return v
}

// Verify checks the verdict's id, signature and validator binding.
func (s SignedVerdict) Verify(bound func(node string, pub ed25519.PublicKey) bool) error {
	v := s.Verdict.normalized()
	if err := verify(s.ID, s.Signature, v.PublicKey, v.Signer, v); err != nil {
		return err
	}
	pub, _ := base64.StdEncoding.DecodeString(v.PublicKey)
	if bound != nil && !bound(v.Validator, pub) {
		return fmt.Errorf("%w: verdict names validator %s", ErrNodeMismatch, v.Validator)
	}
	return nil
}

func sign(content any, k *identity.Key) (id, sig string, err error) {
	canon, err := jcs.Marshal(content)
	if err != nil {
		return "", "", fmt.Errorf("pulse: canonicalising: %w", err)
	}
	return receipt.IDOf(canon), base64.StdEncoding.EncodeToString(k.Sign(canon)), nil
}

func verify(id, signature, publicKey, signer string, content any) error {
	pub, err := base64.StdEncoding.DecodeString(publicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: publicKey is not a base64 Ed25519 key", ErrBadSignature)
	}
	canon, err := jcs.Marshal(content)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadID, err)
	}
	if got := receipt.IDOf(canon); got != id {
		return fmt.Errorf("%w: envelope says %s, content hashes to %s", ErrBadID, id, got)
	}
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil || !identity.Verify(ed25519.PublicKey(pub), canon, sig) {
		return fmt.Errorf("%w: %s", ErrBadSignature, id)
	}
	if identity.IDFromPublic(pub) != signer {
		return fmt.Errorf("%w: signer %q does not match the key", ErrBadSignature, signer)
	}
	return nil
}

// Uptime is U(t) = 1 + 0.2·ln(1 + t/12), t in hours of continuous presence.
func Uptime(hours float64) float64 {
	if hours < 0 || math.IsNaN(hours) {
		hours = 0
	}
	return 1 + 0.2*math.Log1p(hours/12)
}

// PresencePoints is 10 × U(t) × (1 + Σ weights of the verified capabilities).
func PresencePoints(hours float64, verified []string) float64 {
	bonus := 0.0
	seen := map[string]bool{}
	for _, c := range verified {
		if !seen[c] {
			bonus += Weights[c]
			seen[c] = true
		}
	}
	return BasePoints * Uptime(hours) * (1 + bonus)
}

// WorkPoints is units × rate × U(t).
func WorkPoints(units, rate, hours float64) float64 {
	if units <= 0 || math.IsNaN(units) || math.IsInf(units, 0) {
		return 0
	}
	return units * rate * Uptime(hours)
}

// Work units, per domain. A research experiment is the unit of work:
//
//   - ml: one unit per million characters trained (Result.TotalTokens;
//     a run that reports none counts one unit), because an ML experiment's
//     cost scales with the tokens it trains;
//   - search, finance, skills, causes: one unit per evaluation (a BM25 +
//     reranker run over the queries, one backtest, one WASM test suite run,
//     one cause evaluation): their cost is about the same every time;
//   - a DiLoCo training run (receipt kind "training-run"): one unit per
//     million tokens trained by all its contributors, to its signer;
//   - noise-floor baseline runs count like any experiment: they are work
//     the network asked for.
//
// Units are capped at MaxUnits per receipt so that a claimed token count
// cannot mint unbounded points (the receipt's value is still checked).
const MaxUnits = 1000.0

// UnitsOf is the work units of a receipt.
func UnitsOf(r receipt.Receipt) float64 {
	u := 1.0
	if r.Domain == "ml" || r.Kind == "training-run" {
		if t := r.Result.TotalTokens; t > 0 && !math.IsInf(t, 0) {
			u = t / 1e6
		}
	}
	return math.Min(u, MaxUnits)
}

// Outcome is the combined judgement of one node in a round.
type Outcome struct {
	Node       string       `json:"node"`
	Present    bool         `json:"present"`
	Verified   []string     `json:"verified"`
	Work       []WorkCredit `json:"work"`
	Validators int          `json:"validators"` // how many judged it
}

// WorkCredit is a work receipt the validators accepted, with its units.
type WorkCredit struct {
	Receipt string  `json:"receipt"`
	Domain  string  `json:"domain"`
	Units   float64 `json:"units"`
}

// Combine merges validators' verdicts into one outcome per node, robustly:
// a node is present, a capability verified and a work receipt accepted only
// when validators holding more than half of the weight of those that judged
// the node say so, and a receipt's units are the weighted median of the
// units they report (Yuma-consensus in spirit: one validator, however it
// lies, cannot mint points against the others). weight gives a validator's
// weight (its reputation; see ValidatorWeight); a validator never judges
// itself (its own entry is ignored).
func Combine(verdicts []Verdict, weight func(validator string) float64) []Outcome {
	byNode := map[string][]vote{}
	seenV := map[string]bool{}
	for _, v := range verdicts {
		if seenV[v.Validator] { // one verdict per validator
			continue
		}
		seenV[v.Validator] = true
		w := weight(v.Validator)
		if !(w > 0) {
			continue
		}
		seenN := map[string]bool{}
		for _, n := range v.Nodes {
			if n.Node == v.Validator || seenN[n.Node] {
				continue
			}
			seenN[n.Node] = true
			byNode[n.Node] = append(byNode[n.Node], vote{w, n})
		}
	}
	nodes := make([]string, 0, len(byNode))
	for n := range byNode {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	var out []Outcome
	for _, node := range nodes {
		votes := clipWeights(byNode[node])
		total := 0.0
		for _, v := range votes {
			total += v.w
		}
		majority := func(pred func(NodeVerdict) bool) bool {
			s := 0.0
			for _, v := range votes {
				if pred(v.n) {
					s += v.w
				}
			}
			return s > total/2
		}
		o := Outcome{Node: node, Verified: []string{}, Work: []WorkCredit{}, Validators: len(votes)}
		o.Present = majority(func(n NodeVerdict) bool { return n.Present })
		if o.Present {
			for _, c := range Capabilities {
				if majority(func(n NodeVerdict) bool { return n.Present && slices.Contains(n.Verified, c) }) {
					o.Verified = append(o.Verified, c)
				}
			}
			// Receipts any validator accepted, decided one by one.
			cand := map[string]string{}
			for _, v := range votes {
				for _, w := range v.n.Work {
					if w.OK {
						cand[w.Receipt] = w.Domain
					}
				}
			}
			ids := make([]string, 0, len(cand))
			for id := range cand {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			for _, id := range ids {
				var vals, ws []float64
				for _, v := range votes {
					u := 0.0 // a validator that did not accept it says 0
					for _, w := range v.n.Work {
						if w.Receipt == id && w.OK && v.n.Present {
							u = w.Units
						}
					}
					vals = append(vals, u)
					ws = append(ws, v.w)
				}
				if m := WeightedMedian(vals, ws); m > 0 {
					o.Work = append(o.Work, WorkCredit{Receipt: id, Domain: cand[id], Units: math.Min(m, MaxUnits)})
				}
			}
		}
		out = append(out, o)
	}
	return out
}

type vote struct {
	w float64
	n NodeVerdict
}

// clipWeights caps each validator's weight at the sum of the others' (when
// there are others), so that no single validator ever holds a majority on
// its own, however large its reputation.
func clipWeights(votes []vote) []vote {
	if len(votes) < 2 {
		return votes
	}
	total := 0.0
	for _, v := range votes {
		total += v.w
	}
	out := make([]vote, len(votes))
	for i, v := range votes {
		if others := total - v.w; v.w > others {
			v.w = others
		}
		out[i] = v
	}
	return out
}

// WeightedMedian is the lower weighted median of vals: the smallest value
// v such that the weight of values <= v is at least half the total. Values
// that are not finite count as 0.
func WeightedMedian(vals, ws []float64) float64 {
	if len(vals) == 0 || len(vals) != len(ws) {
		return 0
	}
	idx := make([]int, len(vals))
	for i := range idx {
		idx[i] = i
	}
	clean := func(x float64) float64 {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0
		}
		return x
	}
	sort.SliceStable(idx, func(a, b int) bool { return clean(vals[idx[a]]) < clean(vals[idx[b]]) })
	total := 0.0
	for _, w := range ws {
		total += math.Max(w, 0)
	}
	acc := 0.0
	for _, i := range idx {
		acc += math.Max(ws[i], 0)
		if acc >= total/2 {
			return clean(vals[i])
		}
	}
	return clean(vals[idx[len(idx)-1]])
}

// ValidatorWeight is a validator's weight from its point balance: 1 +
// ln(1 + balance/1000), so reputation counts but grows slowly, and a
// validator new to the site still has a say.
func ValidatorWeight(balance float64) float64 {
	if !(balance > 0) {
		return 1
	}
	return 1 + math.Log1p(balance/1000)
}

// ChallengeOutcome is the signed record of a fraud-proof challenge's end,
// signed by the referee node and gossiped on the pulse topic.
type ChallengeOutcome struct {
	Version    int    `json:"version"`
	Kind       string `json:"kind"` // "challenge-outcome"
	Challenge  string `json:"challenge"`
	Receipt    string `json:"receipt"`
	Domain     string `json:"domain"`
	Defender   string `json:"defender"`
	Challenger string `json:"challenger"`
	Referee    string `json:"referee"` // the signing node
	Winner     string `json:"winner"`
	Loser      string `json:"loser"`
	Stage      string `json:"stage"`
	Step       int    `json:"step"`
	Op         int    `json:"op"`
	OpName     string `json:"opName"`
	Reason     string `json:"reason"`
	StepRounds int    `json:"stepRounds"`
	OpRounds   int    `json:"opRounds"`
	Bytes      int64  `json:"bytes"`
	Timestamp  int64  `json:"timestamp"`
	PublicKey  string `json:"publicKey"`
	Signer     string `json:"signer"`
}

// SignedOutcome is an outcome with its id and signature.
type SignedOutcome struct {
	ID        string           `json:"id"`
	Outcome   ChallengeOutcome `json:"outcome"`
	Signature string           `json:"signature"`
}

// SignOutcome stamps o with the referee's key and signs it.
func SignOutcome(o ChallengeOutcome, k *identity.Key) (SignedOutcome, error) {
	o.Version, o.Kind = Version, "challenge-outcome"
	o.PublicKey = base64.StdEncoding.EncodeToString(k.Public())
	o.Signer = k.ID()
	id, sig, err := sign(o, k)
	if err != nil {
		return SignedOutcome{}, err
	}
	return SignedOutcome{ID: id, Outcome: o, Signature: sig}, nil
}

// Verify checks the outcome's id, signature and referee binding.
func (s SignedOutcome) Verify(bound func(node string, pub ed25519.PublicKey) bool) error {
	o := s.Outcome
	if err := verify(s.ID, s.Signature, o.PublicKey, o.Signer, o); err != nil {
		return err
	}
	pub, _ := base64.StdEncoding.DecodeString(o.PublicKey)
	if bound != nil && !bound(o.Referee, pub) {
		return fmt.Errorf("%w: outcome names referee %s", ErrNodeMismatch, o.Referee)
	}
	if o.Kind != "challenge-outcome" || (o.Winner != o.Defender && o.Winner != o.Challenger) || o.Winner == o.Loser {
		return fmt.Errorf("%w: outcome parties", ErrInvalid)
	}
	return nil
}

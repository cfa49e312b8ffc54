// Package paper defines research papers and peer reviews as signed records,
// like receipts: RFC 8785 canonical JSON, id = sha256 of the canonical
// bytes, Ed25519 signature by the author's (or reviewer's) key.
//
// A paper summarises a window of an agent's experiments. Its facts — the
// results table, the effect sizes against the noise floor, the receipts it
// rests on and the one key claim reviewers re-run — are computed here from
// the receipts (Synthesize); only the prose may come from an LLM (package
// activities decides). A review scores a paper 1-10 against the rubric in
// review.go; the median of a paper's reviews decides whether it is a
// breakthrough (8 or more).
package paper

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"math"

	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/jcs"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// Version is the current paper and review format version.
const Version = 1

// BreakthroughScore is the aggregated score from which a paper is a breakthrough.
const BreakthroughScore = 8

// Paper is one synthesized paper.
type Paper struct {
	Version   int    `json:"version"`
	Kind      string `json:"kind"` // "paper"
	Domain    string `json:"domain"`
	Project   string `json:"project"`
	Campaign  string `json:"campaign"`
	Agent     string `json:"agent"`
	Number    int    `json:"number"` // 1-based per agent and campaign
	PeerID    string `json:"peerId"` // author key id
	PublicKey string `json:"publicKey"`
	Timestamp int64  `json:"timestamp"` // unix ms
	Title     string `json:"title"`
	Abstract  string `json:"abstract"`
	// Markdown is the whole paper as a person reads it.
	Markdown string `json:"markdown"`
	// Writer is "builtin", "llm:<model>" or "builtin (llm fallback: <code>)", code from llm.ReasonCode (never provider text).
	Writer string `json:"writer"`
	// Receipts are the ids of the experiments the paper rests on (its window).
	Receipts []string `json:"receipts"`
	// Lineage is the chain of receipt ids from the key receipt back through
	// its inspirations (key first).
	Lineage []string `json:"lineage"`
	Claim   Claim    `json:"claim"`
}

// Claim is the paper's key claim: one receipt's metric, and its effect
// against the campaign's noise floor. Reviewers re-run this receipt.
type Claim struct {
	Receipt   string  `json:"receipt"` // key receipt id
	Metric    string  `json:"metric"`
	Direction string  `json:"direction"` // "minimize" | "maximize"
	Value     float64 `json:"value"`     // the key receipt's validation metric
	TestValue float64 `json:"testValue"` // its held-out test metric
	FloorMean float64 `json:"floorMean"`
	FloorSD   float64 `json:"floorSd"`
	FloorN    int     `json:"floorN"`
	// Effect is the direction-aware gain of Value over FloorMean (>0 better).
	Effect float64 `json:"effect"`
	// EffectCI is the half-width of the 95% interval of Effect for one run
	// against a mean of FloorN runs: 1.96*SD*sqrt(1+1/N).
	EffectCI float64 `json:"effectCi"`
	// Z is Effect in floor standard deviations (0 when SD is 0).
	Z float64 `json:"z"`
	// K is the multiple of SD a gain must exceed to beat the noise floor.
	K float64 `json:"k"`
}

// Signed is a paper with its id and signature.
type Signed struct {
	ID        string `json:"id"`
	Paper     Paper  `json:"paper"`
	Signature string `json:"signature"`
}

// Errors of Verify (wrapped; test with errors.Is).
var (
	ErrBadID        = errors.New("paper: id does not match the canonical content")
	ErrBadSignature = errors.New("paper: invalid signature")
	ErrPeerMismatch = errors.New("paper: signer id does not match the public key")
)

func (p Paper) normalized() Paper {
	if p.Receipts == nil {
		p.Receipts = []string{}
	}
	if p.Lineage == nil {
		p.Lineage = []string{}
	}
	return p
}

func finite(name string, vs ...float64) error {
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("paper: %s is %v; only finite numbers can be signed", name, v)
		}
	}
	return nil
}

func (c Claim) check() error {
	return finite("claim", c.Value, c.TestValue, c.FloorMean, c.FloorSD, c.Effect, c.EffectCI, c.Z, c.K)
}

// Sign fills in the author fields from k and returns the signed paper.
func Sign(p Paper, k *identity.Key) (Signed, error) {
	if k == nil {
		return Signed{}, errors.New("paper: nil signing key")
	}
	stamp(&p.Version, &p.PeerID, &p.PublicKey, k)
	p.Kind = "paper"
	p = p.normalized()
	if err := p.Claim.check(); err != nil {
		return Signed{}, err
	}
	id, sig, err := sign(p, k)
	if err != nil {
		return Signed{}, err
	}
	return Signed{ID: id, Paper: p, Signature: sig}, nil
}

// sign canonicalises content (RFC 8785) and returns its id (hex sha256)
// and base64 Ed25519 signature by k.
func sign(content any, k *identity.Key) (id, sig string, err error) {
	canon, err := jcs.Marshal(content)
	if err != nil {
		return "", "", fmt.Errorf("paper: canonicalising: %w", err)
	}
	return receipt.IDOf(canon), base64.StdEncoding.EncodeToString(k.Sign(canon)), nil
}

// stamp sets the version and signer fields common to papers and reviews.
func stamp(version *int, peerID, publicKey *string, k *identity.Key) {
	if *version == 0 {
		*version = Version
	}
	*peerID = k.ID()
	*publicKey = base64.StdEncoding.EncodeToString(k.Public())
}

// Verify checks the id, the signature and the signer id.
func (s Signed) Verify() error {
	return verify(s.ID, s.Signature, s.Paper.PublicKey, s.Paper.PeerID, s.Paper.normalized())
}

func verify(id, signature, publicKey, peerID string, content any) error {
	pub, err := base64.StdEncoding.DecodeString(publicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: publicKey is not a base64 Ed25519 public key", ErrBadSignature)
	}
	canon, err := jcs.Marshal(content)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadID, err)
	}
	if got := receipt.IDOf(canon); got != id {
		return fmt.Errorf("%w: envelope says %s, content hashes to %s", ErrBadID, id, got)
	}
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return fmt.Errorf("%w: signature is not base64: %v", ErrBadSignature, err)
	}
	if !identity.Verify(ed25519.PublicKey(pub), canon, sig) {
		return fmt.Errorf("%w: %s", ErrBadSignature, id)
	}
	if want := identity.IDFromPublic(pub); peerID != want {
		return fmt.Errorf("%w: %q, key gives %q", ErrPeerMismatch, peerID, want)
	}
	return nil
}

// Review is one reviewer's signed verdict on a paper.
type Review struct {
	Version   int    `json:"version"`
	Kind      string `json:"kind"` // "review"
	PaperID   string `json:"paperId"`
	Reviewer  string `json:"reviewer"` // reviewer key id
	PublicKey string `json:"publicKey"`
	// Node is the P2P node (peer id) the review ran on.
	Node      string `json:"node"`
	Timestamp int64  `json:"timestamp"`
	// Score is 1-10: the rubric's points, at least 1.
	Score   int         `json:"score"`
	Rubric  []Criterion `json:"rubric"`
	Reasons []string    `json:"reasons"`
	// Reproduction is the reviewer's re-run of the key receipt.
	Reproduction Reproduction `json:"reproduction"`
}

// Criterion is one rubric line.
type Criterion struct {
	Name   string `json:"name"`
	Points int    `json:"points"`
	Max    int    `json:"max"`
	Note   string `json:"note"`
}

// Reproduction is a re-run of the key receipt's config with a fresh seed.
type Reproduction struct {
	Receipt  string  `json:"receipt"`
	Seed     int64   `json:"seed"`
	Ran      bool    `json:"ran"`
	Claimed  float64 `json:"claimed"`
	Observed float64 `json:"observed"`
	// Tolerance is the largest |Observed-Claimed| counted as reproduced.
	Tolerance float64 `json:"tolerance"`
	Error     string  `json:"error,omitempty"`
}

// SignedReview is a review with its id and signature.
type SignedReview struct {
	ID        string `json:"id"`
	Review    Review `json:"review"`
	Signature string `json:"signature"`
}

func (r Review) normalized() Review {
	if r.Rubric == nil {
		r.Rubric = []Criterion{}
	}
	if r.Reasons == nil {
		r.Reasons = []string{}
	}
	return r
}

// SignReview fills in the reviewer fields from k and signs r.
func SignReview(r Review, k *identity.Key) (SignedReview, error) {
	if k == nil {
		return SignedReview{}, errors.New("review: nil signing key")
	}
	stamp(&r.Version, &r.Reviewer, &r.PublicKey, k)
	r.Kind = "review"
	r = r.normalized()
	if err := finite("reproduction", r.Reproduction.Claimed, r.Reproduction.Observed, r.Reproduction.Tolerance); err != nil {
		return SignedReview{}, err
	}
	id, sig, err := sign(r, k)
	if err != nil {
		return SignedReview{}, err
	}
	return SignedReview{ID: id, Review: r, Signature: sig}, nil
}

// Verify checks the review's id, signature and signer id.
func (s SignedReview) Verify() error {
	return verify(s.ID, s.Signature, s.Review.PublicKey, s.Review.Reviewer, s.Review.normalized())
}

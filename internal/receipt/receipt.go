// Package receipt defines signed research receipts: one record per
// experiment, canonicalised with RFC 8785 (package jcs), identified by the
// SHA-256 of the canonical bytes and signed with the agent's Ed25519 key.
//
// Field names follow the public Hyperspace run format (project, peerId,
// runNumber, timestamp, hypothesis, config, result, improvement, isNewBest,
// inspiredBy) plus fields of our own. The Signed envelope is what is
// stored and exchanged everywhere (Postgres JSONB, gossip, CRDT, the git
// archive); anyone can check it with Verify and nothing else.
//
// Because canonical JSON numbers are IEEE doubles, integers in a receipt
// (seed, timestamp, run number) must lie within ±2^53 and every float must
// be finite; Sign rejects receipts that break either rule rather than sign
// bytes that do not say exactly what the receipt holds.
package receipt

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/jcs"
	"github.com/hyperspace-ai/hyperspace/internal/noise"
)

// Version is the current receipt format version.
const Version = 1

// Receipt is one experiment: field names follow the public Hyperspace run
// format (project, peerId, runNumber, timestamp, hypothesis, config,
// result{...}, improvement, isNewBest, inspiredBy) plus ours.
type Receipt struct {
	Version     int            `json:"version"`     // 1
	Project     string         `json:"project"`     // dataset/project, e.g. "cranfield"
	PeerID      string         `json:"peerId"`      // signer id (identity.Key.ID())
	PublicKey   string         `json:"publicKey"`   // base64 std of the ed25519 public key
	RunNumber   int            `json:"runNumber"`   // 1-based per agent
	Timestamp   int64          `json:"timestamp"`   // unix milliseconds
	Hypothesis  string         `json:"hypothesis"`  // one line: what was tried and why
	Config      map[string]any `json:"config"`      // the normalised domain config
	Result      Result         `json:"result"`      // what the evaluation reported
	Improvement float64        `json:"improvement"` // relative gain vs the best before this run, direction-aware: >0 means better
	IsNewBest   bool           `json:"isNewBest"`   // true only if it beats the best by more than the noise threshold
	InspiredBy  *string        `json:"inspiredBy"`  // receipt id of the main parent, or null
	GPU         *string        `json:"gpu"`         // null on CPU

	// Ours.
	Domain     string            `json:"domain"`
	Campaign   string            `json:"campaign"`
	Agent      string            `json:"agent"` // agent name within the campaign
	Seed       int64             `json:"seed"`
	Metric     MetricValue       `json:"metric"`          // {name, direction, value, testValue}
	Parents    []string          `json:"parents"`         // receipt ids that inspired it (marshalled as [] when empty)
	Proposer   string            `json:"proposer"`        // "builtin", "llm:<model>", or "builtin (llm fallback: <code>)", code from llm.ReasonCode (never provider text)
	Baseline   bool              `json:"baseline"`        // a noise-floor baseline run
	NoiseFloor *NoiseFloor       `json:"noiseFloor"`      // floor used for isNewBest, or null
	BeatsNoise bool              `json:"beatsNoiseFloor"` // the gain exceeded the noise threshold
	Artifacts  map[string]string `json:"artifacts"`       // name -> S3 key (marshalled as {} when empty)
	// Kind is empty for an experiment; "training-run" for a DiLoCo run's
	// result (Training then says how it was trained; Parents are its
	// rounds' record ids).
	Kind     string        `json:"kind,omitempty"`
	Training *TrainingInfo `json:"training,omitempty"`
	// Code is the candidate's source when it was code (an LLM-written skill),
	// so a receipt can be re-run from itself.
	Code string `json:"code,omitempty"`
	// Judgement is the interval the run was judged by against the best
	// before it (noise.Judge); nil on receipts judged by the older K*SD
	// floor alone and on baselines.
	Judgement *noise.Judgement `json:"judgement,omitempty"`
	// Candidate: the run passed its judgement and waits for confirmation
	// runs (isNewBest stays false on it).
	Candidate bool `json:"candidate,omitempty"`
	// ConfirmationOf is the receipt id of the candidate this run re-ran
	// with a fresh seed; the confirmation that completes the set carries
	// isNewBest (its parents are the candidate and the earlier ones).
	ConfirmationOf string `json:"confirmationOf,omitempty"`
	// Selection discounts the metric by how many configs the campaign had
	// tried when this run was recorded (the deflated Sharpe ratio in
	// finance); nil where the domain has no such statistic.
	Selection *Selection `json:"selection,omitempty"`
}

// Selection is a result's statistic after selection bias: the campaign had
// tried Trials configs (this one included; repeated runs of a config are
// one trial) whose metrics varied by
// TrialVar, so the best of them is expected to reach ExpectedMax by luck
// alone, and Deflated is the probability that this run's skill is real
// given that (Bailey and Lopez de Prado's deflated Sharpe ratio: above
// 0.95 is the usual bar).
type Selection struct {
	Method      string  `json:"method"` // "deflated-sharpe"
	Trials      int     `json:"trials"`
	TrialVar    float64 `json:"trialVar"`
	ExpectedMax float64 `json:"expectedMax"`
	Deflated    float64 `json:"deflated"`
}

// TrainingInfo describes a DiLoCo training run (Kind "training-run").
type TrainingInfo struct {
	Run           string        `json:"run"`
	Workers       int           `json:"workers"`
	InnerSteps    int           `json:"innerSteps"`
	Rounds        int           `json:"rounds"`      // rounds completed
	Compression   string        `json:"compression"` // fp32, fp16, int8, int4
	OuterLR       float64       `json:"outerLR"`
	OuterMomentum float64       `json:"outerMomentum"`
	FinalStep     string        `json:"finalStep,omitempty"` // last round: "average" (of the workers) or "outer" (Nesterov)
	Contributors  []Contributor `json:"contributors"`        // who trained, sorted by id
	BytesUp       int64         `json:"bytesUp"`
	BytesDown     int64         `json:"bytesDown"`
	SoloRounds    int           `json:"soloRounds"` // rounds closed with a single delta
	Solo          bool          `json:"solo"`       // every round had one contributor: solo training
	Checkpoint    string        `json:"checkpoint"` // sha256 of the final parameters file
	RoundChain    string        `json:"roundChain"` // record id of the last round (each names its predecessor)
}

// Contributor is one worker or node that trained part of a run.
type Contributor struct {
	ID     string `json:"id"`
	Deltas int    `json:"deltas"`
}

// Result is what the evaluation reported.
type Result struct {
	ValLoss      float64            `json:"valLoss"` // for ML; other domains may leave 0
	TrainLoss    float64            `json:"trainLoss"`
	LossCurve    [][2]float64       `json:"lossCurve"` // (step, loss); marshalled as [] when empty
	DurationSec  float64            `json:"durationSec"`
	TokensPerSec float64            `json:"tokensPerSec"`
	TotalTokens  float64            `json:"totalTokens"`
	Values       map[string]float64 `json:"values"` // every number the domain reported; {} when empty
	// Items are the per-item validation scores the metric aggregates, for
	// paired comparisons (nil when the domain has none).
	Items *domains.Items `json:"items,omitempty"`
}

// MetricValue is the domain metric of the run.
type MetricValue struct {
	Name      string  `json:"name"`
	Direction string  `json:"direction"` // "minimize" or "maximize"
	Value     float64 `json:"value"`     // validation split (ranks)
	TestValue float64 `json:"testValue"` // held-out test split (reported only)
}

// NoiseFloor is the noise floor a run was judged against.
type NoiseFloor struct {
	Mean      float64 `json:"mean"`
	SD        float64 `json:"sd"`
	N         int     `json:"n"`
	Threshold float64 `json:"threshold"`
}

// Signed is the envelope stored everywhere (Postgres JSONB, gossip, CRDT,
// git archive).
type Signed struct {
	ID        string  `json:"id"`        // hex sha256 of jcs(receipt)
	Receipt   Receipt `json:"receipt"`   // the signed content
	Signature string  `json:"signature"` // base64 std ed25519 signature over the same canonical bytes
	// Vouch, outside the signed content, is the certificate by which a P2P
	// node vouches for the signer's key (see package admission). Records
	// that travel between nodes carry it; the site's own copies need none.
	Vouch *Vouch `json:"vouch,omitempty"`
}

// Vouch names the node that vouches for a receipt's signer and carries its
// signature over "hyperspace-agent-cert/v1\n" + publicKey + "\n" + node.
type Vouch struct {
	Node      string `json:"node"`
	Signature string `json:"signature"`
}

// Verification errors; Verify wraps them with details.
var (
	ErrBadID        = errors.New("receipt: id does not match the canonical receipt")
	ErrBadSignature = errors.New("receipt: invalid signature")
	ErrPeerMismatch = errors.New("receipt: peerId does not match the public key")
)

// maxExactInt is the largest integer magnitude a JSON number (IEEE double)
// represents exactly.
const maxExactInt = 1 << 53

// normalized returns r with nil collections replaced by empty ones, so that
// a receipt marshals the same before and after a JSON round trip.
func (r Receipt) normalized() Receipt {
	if r.Parents == nil {
		r.Parents = []string{}
	}
	if r.Artifacts == nil {
		r.Artifacts = map[string]string{}
	}
	if r.Config == nil {
		r.Config = map[string]any{}
	}
	if r.Result.Values == nil {
		r.Result.Values = map[string]float64{}
	}
	if r.Result.LossCurve == nil {
		r.Result.LossCurve = [][2]float64{}
	}
	return r
}

// receiptJSON has Receipt's fields without its methods.
type receiptJSON Receipt

// MarshalJSON encodes r with empty (never null) parents, artifacts, config,
// result.values and result.lossCurve.
func (r Receipt) MarshalJSON() ([]byte, error) {
	return json.Marshal(receiptJSON(r.normalized()))
}

// Check reports the first value in r that cannot be represented exactly in
// canonical JSON: a NaN or infinite float, or an integer beyond ±2^53.
func (r Receipt) Check() error {
	type field struct {
		name string
		v    float64
	}
	fl := []field{
		{"improvement", r.Improvement},
		{"metric.value", r.Metric.Value},
		{"metric.testValue", r.Metric.TestValue},
		{"result.valLoss", r.Result.ValLoss},
		{"result.trainLoss", r.Result.TrainLoss},
		{"result.durationSec", r.Result.DurationSec},
		{"result.tokensPerSec", r.Result.TokensPerSec},
		{"result.totalTokens", r.Result.TotalTokens},
	}
	if nf := r.NoiseFloor; nf != nil {
		fl = append(fl, field{"noiseFloor.mean", nf.Mean}, field{"noiseFloor.sd", nf.SD}, field{"noiseFloor.threshold", nf.Threshold})
	}
	for _, f := range fl {
		if err := finite(f.name, f.v); err != nil {
			return err
		}
	}
	if it := r.Result.Items; it != nil {
		for i, v := range it.Values {
			if err := finite(fmt.Sprintf("result.items.values[%d]", i), v); err != nil {
				return err
			}
		}
		if err := finite("result.items.scale", it.Scale); err != nil {
			return err
		}
	}
	if j := r.Judgement; j != nil {
		for _, f := range []field{{"gain", j.Gain}, {"threshold", j.Threshold}, {"lower", j.Lower}, {"itemsSE", j.ItemsSE},
			{"itemsQ", j.ItemsQ}, {"seedSD", j.SeedSD}, {"seedQ", j.SeedQ}, {"alpha", j.Alpha}} {
			if err := finite("judgement."+f.name, f.v); err != nil {
				return err
			}
		}
	}
	if sel := r.Selection; sel != nil {
		for _, f := range []field{{"trialVar", sel.TrialVar}, {"expectedMax", sel.ExpectedMax}, {"deflated", sel.Deflated}} {
			if err := finite("selection."+f.name, f.v); err != nil {
				return err
			}
		}
	}
	for i, p := range r.Result.LossCurve {
		if err := finite(fmt.Sprintf("result.lossCurve[%d][0]", i), p[0]); err != nil {
			return err
		}
		if err := finite(fmt.Sprintf("result.lossCurve[%d][1]", i), p[1]); err != nil {
			return err
		}
	}
	for _, k := range sortedKeys(r.Result.Values) {
		if err := finite("result.values."+k, r.Result.Values[k]); err != nil {
			return err
		}
	}
	for _, k := range sortedKeys(r.Config) {
		if err := checkAny("config."+k, r.Config[k]); err != nil {
			return err
		}
	}
	ints := []struct {
		name string
		v    int64
	}{{"seed", r.Seed}, {"timestamp", r.Timestamp}, {"runNumber", int64(r.RunNumber)}}
	for _, i := range ints {
		if i.v > maxExactInt || i.v < -maxExactInt {
			return fmt.Errorf("receipt: %s %d is outside ±2^53 and cannot be represented exactly in canonical JSON", i.name, i.v)
		}
	}
	return nil
}

func finite(name string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("receipt: %s is %v; NaN and Inf cannot be signed (JSON has no such numbers)", name, v)
	}
	return nil
}

func checkAny(name string, v any) error {
	switch x := v.(type) {
	case float64:
		return finite(name, x)
	case float32:
		return finite(name, float64(x))
	case int64:
		if x > maxExactInt || x < -maxExactInt {
			return fmt.Errorf("receipt: %s %d is outside ±2^53", name, x)
		}
	case map[string]any:
		for _, k := range sortedKeys(x) {
			if err := checkAny(name+"."+k, x[k]); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := checkAny(fmt.Sprintf("%s[%d]", name, i), e); err != nil {
				return err
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Canonical returns the RFC 8785 canonical JSON of r: the bytes that are
// hashed into the id and signed.
func Canonical(r Receipt) ([]byte, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	// receiptJSON(r.normalized()) is what r.MarshalJSON encodes; encoding
	// it directly spares encoding/json re-scanning a Marshaler's output.
	b, err := json.Marshal(receiptJSON(r.normalized()))
	if err != nil {
		return nil, fmt.Errorf("receipt: canonicalising: %w", err)
	}
	canon, err := jcs.Canonicalize(b)
	if err != nil {
		return nil, fmt.Errorf("receipt: canonicalising: %w", err)
	}
	return canon, nil
}

// IDOf returns the receipt id: hex sha256 of the canonical bytes.
func IDOf(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:])
}

// Sign fills in r's PeerID and PublicKey from k (and Version when 0),
// canonicalises it and returns the signed envelope.
func Sign(r Receipt, k *identity.Key) (Signed, error) {
	if k == nil {
		return Signed{}, errors.New("receipt: nil signing key")
	}
	if r.Version == 0 {
		r.Version = Version
	}
	r.PeerID = k.ID()
	r.PublicKey = base64.StdEncoding.EncodeToString(k.Public())
	r = r.normalized()
	canon, err := Canonical(r)
	if err != nil {
		return Signed{}, err
	}
	return Signed{
		ID:        IDOf(canon),
		Receipt:   r,
		Signature: base64.StdEncoding.EncodeToString(k.Sign(canon)),
	}, nil
}

// Verify recomputes the canonical bytes and id of s.Receipt and checks that
// the id matches (ErrBadID), that the signature is valid for the embedded
// public key (ErrBadSignature), and that PeerID is derived from that key
// (ErrPeerMismatch). Errors wrap those sentinels; test with errors.Is.
func (s Signed) Verify() error {
	pub, err := base64.StdEncoding.DecodeString(s.Receipt.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: publicKey is not a base64 Ed25519 public key", ErrBadSignature)
	}
	canon, err := Canonical(s.Receipt)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadID, err)
	}
	if id := IDOf(canon); id != s.ID {
		return fmt.Errorf("%w: envelope says %s, content hashes to %s", ErrBadID, s.ID, id)
	}
	sig, err := base64.StdEncoding.DecodeString(s.Signature)
	if err != nil {
		return fmt.Errorf("%w: signature is not base64: %v", ErrBadSignature, err)
	}
	if !identity.Verify(ed25519.PublicKey(pub), canon, sig) {
		return fmt.Errorf("%w: receipt %s", ErrBadSignature, s.ID)
	}
	if want := identity.IDFromPublic(pub); s.Receipt.PeerID != want {
		return fmt.Errorf("%w: peerId %q, key gives %q", ErrPeerMismatch, s.Receipt.PeerID, want)
	}
	return nil
}

// Verified is a signed receipt that Signed.Verified checked in this
// process; nothing else makes one, so a function that takes a Verified
// may skip verifying it again (the record passed one check, and the type
// says which). It shares the receipt's maps and slices with the value it
// was made from: whoever holds either must treat both as read-only.
type Verified struct{ s Signed }

// Verified checks s as Verify does and returns it as a Verified.
func (s Signed) Verified() (Verified, error) {
	if err := s.Verify(); err != nil {
		return Verified{}, err
	}
	return Verified{s: s}, nil
}

// Signed returns the verified record.
func (v Verified) Signed() Signed { return v.s }

// ID returns the record's id ("" for the zero Verified, which holds no
// record).
func (v Verified) ID() string { return v.s.ID }

// WithVouch returns v carrying vouch instead of its own. The vouch lies
// outside the signed content (Verify does not read it), so the record
// stays verified; whether the vouch is good is admission's question.
func (v Verified) WithVouch(vouch *Vouch) Verified {
	v.s.Vouch = vouch
	return v
}

// ShortID returns the first 8 characters of a receipt id, as shown in
// hypotheses and logs.
func ShortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

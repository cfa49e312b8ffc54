package fraud

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/hyperspace-ai/hyperspace/internal/fraud/merkle"
)

// Hash is a SHA-256 digest (hex in JSON).
type Hash = merkle.Hash

// Party is a side of a challenge.
type Party string

const (
	Defender   Party = "defender"   // the challenged node: commits to its trace and reveals it
	Challenger Party = "challenger" // disputes the defender's final state and picks sub-intervals
)

// Other is the opposite party.
func (p Party) Other() Party {
	if p == Defender {
		return Challenger
	}
	return Defender
}

func (p Party) valid() bool { return p == Defender || p == Challenger }

// Commitment is the defender's first move: the Merkle root over its N+1
// step-state roots, with the first (state 0) and last (state N) opened.
type Commitment struct {
	Steps        int          `json:"steps"`
	Root         Hash         `json:"root"`
	Genesis      Hash         `json:"genesis"`
	GenesisProof merkle.Proof `json:"genesisProof"`
	Final        Hash         `json:"final"`
	FinalProof   merkle.Proof `json:"finalProof"`
}

// Reveal is the defender's move in a dissection round: the roots at the
// interior cut points of the current interval (Game.Cuts), in order, each
// with its inclusion proof against the level's commitment.
type Reveal struct {
	Roots  []Hash         `json:"roots"`
	Proofs []merkle.Proof `json:"proofs"`
}

// Choice is the challenger's move in a dissection round: the sub-interval
// (0-based) it continues in, meaning it agrees with the defender's root at
// the sub-interval's start and not at its end; Claim is the challenger's
// own root at that end.
type Choice struct {
	Index int  `json:"index"`
	Claim Hash `json:"claim"`
}

// OpCommitment is the defender's move once the dissection is down to one
// step: the Merkle root over its NumOps+1 op-state roots of that step,
// with the first and last opened. Start must be merkle.Node(step-state
// root at Step, Params.ScratchStart); End must be merkle.Node(the
// defender's step-state root at Step+1, EndScratch).
type OpCommitment struct {
	Step       int          `json:"step"`
	NumOps     int          `json:"numOps"`
	Root       Hash         `json:"root"`
	Start      Hash         `json:"start"`
	StartProof merkle.Proof `json:"startProof"`
	End        Hash         `json:"end"`
	EndProof   merkle.Proof `json:"endProof"`
	EndScratch Hash         `json:"endScratch"`
}

// RefereeInput opens the agreed op state before the disputed op: every
// buffer leaf (in the program's buffer order) and the contents of the
// buffers the op reads. Either party may send it; if it does not check
// out, its sender loses.
type RefereeInput struct {
	From    Party             `json:"from"`
	Step    int               `json:"step"`
	Op      int               `json:"op"`
	Leaves  []Hash            `json:"leaves"`
	Buffers map[string][]byte `json:"buffers"`
}

// Stage names where a game was decided.
type Stage string

const (
	StageCommitment   Stage = "commitment"
	StageStep         Stage = "step-dissection"
	StageOpCommitment Stage = "op-commitment"
	StageOp           Stage = "op-dissection"
	StageReferee      Stage = "referee"
	StageForfeit      Stage = "forfeit"
	StageFull         Stage = "full-rerun"
)

// Verdict ends a game.
type Verdict struct {
	Winner Party `json:"winner"`
	Loser  Party `json:"loser"`
	Stage  Stage `json:"stage"`
	// Step is the disputed step (0-based: from state Step to Step+1), -1
	// when the game ended before the step dissection did.
	Step int `json:"step"`
	// Op and OpName name the re-executed op (-1 and "" when none was).
	Op     int    `json:"op"`
	OpName string `json:"opName,omitempty"`
	Reason string `json:"reason"`
	// Computed is the referee's post-op root (or re-run metric's bits for
	// a full re-run), when it computed one.
	Computed *Hash `json:"computed,omitempty"`
	// Rounds are the dissection rounds played at each level.
	StepRounds int `json:"stepRounds"`
	OpRounds   int `json:"opRounds"`
}

// Size bounds of the decoders. A reveal holds at most MaxK-1 roots and
// proofs; a referee input holds at most MaxBuffers leaves and, by default,
// MaxRefereeInputBytes of JSON (the buffers of one op; the largest ML
// configs need a larger bound, see DecodeRefereeInput).
const (
	MaxK                 = 64
	MaxBuffers           = 4096
	maxHashJSON          = 67 // a quoted hex hash and a comma
	MaxCommitmentBytes   = 512 + 2*merkle.MaxProofBytes
	MaxRevealBytes       = 64 + (MaxK-1)*(maxHashJSON+merkle.MaxProofBytes+1)
	MaxChoiceBytes       = 256
	MaxOpCommitmentBytes = 512 + 2*merkle.MaxProofBytes
	MaxVerdictBytes      = 4096
	MaxRefereeInputBytes = 64 << 20
)

// decode is a strict, bounded JSON decode: unknown fields and trailing
// data are errors.
func decode(b []byte, limit int, what string, v any) error {
	if len(b) > limit {
		return fmt.Errorf("fraud: %s of %d bytes, at most %d", what, len(b), limit)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("fraud: decode %s: %w", what, err)
	}
	if d.More() {
		return fmt.Errorf("fraud: decode %s: trailing data", what)
	}
	return nil
}

func checkProofs(what string, ps ...merkle.Proof) error {
	for _, p := range ps {
		if len(p) > merkle.MaxDepth {
			return fmt.Errorf("fraud: %s: proof of %d hashes, at most %d", what, len(p), merkle.MaxDepth)
		}
	}
	return nil
}

// DecodeCommitment decodes a Commitment of at most MaxCommitmentBytes.
func DecodeCommitment(b []byte) (Commitment, error) {
	var c Commitment
	if err := decode(b, MaxCommitmentBytes, "commitment", &c); err != nil {
		return Commitment{}, err
	}
	if c.Steps < 1 {
		return Commitment{}, fmt.Errorf("fraud: commitment to %d steps", c.Steps)
	}
	return c, checkProofs("commitment", c.GenesisProof, c.FinalProof)
}

// DecodeReveal decodes a Reveal of at most MaxRevealBytes.
func DecodeReveal(b []byte) (Reveal, error) {
	var r Reveal
	if err := decode(b, MaxRevealBytes, "reveal", &r); err != nil {
		return Reveal{}, err
	}
	if len(r.Roots) > MaxK-1 || len(r.Roots) != len(r.Proofs) {
		return Reveal{}, fmt.Errorf("fraud: reveal of %d roots and %d proofs", len(r.Roots), len(r.Proofs))
	}
	return r, checkProofs("reveal", r.Proofs...)
}

// DecodeChoice decodes a Choice of at most MaxChoiceBytes.
func DecodeChoice(b []byte) (Choice, error) {
	var c Choice
	if err := decode(b, MaxChoiceBytes, "choice", &c); err != nil {
		return Choice{}, err
	}
	if c.Index < 0 || c.Index >= MaxK {
		return Choice{}, fmt.Errorf("fraud: choice of sub-interval %d", c.Index)
	}
	return c, nil
}

// DecodeOpCommitment decodes an OpCommitment of at most MaxOpCommitmentBytes.
func DecodeOpCommitment(b []byte) (OpCommitment, error) {
	var c OpCommitment
	if err := decode(b, MaxOpCommitmentBytes, "op commitment", &c); err != nil {
		return OpCommitment{}, err
	}
	if c.Step < 0 || c.NumOps < 1 {
		return OpCommitment{}, fmt.Errorf("fraud: op commitment to step %d with %d ops", c.Step, c.NumOps)
	}
	return c, checkProofs("op commitment", c.StartProof, c.EndProof)
}

// DecodeRefereeInput decodes a RefereeInput of at most limit bytes
// (MaxRefereeInputBytes when limit <= 0) and MaxBuffers leaves.
func DecodeRefereeInput(b []byte, limit int) (RefereeInput, error) {
	if limit <= 0 {
		limit = MaxRefereeInputBytes
	}
	var in RefereeInput
	if err := decode(b, limit, "referee input", &in); err != nil {
		return RefereeInput{}, err
	}
	if !in.From.valid() || in.Step < 0 || in.Op < 0 || len(in.Leaves) > MaxBuffers || len(in.Buffers) > MaxBuffers {
		return RefereeInput{}, fmt.Errorf("fraud: referee input from %q for step %d op %d with %d leaves, %d buffers", in.From, in.Step, in.Op, len(in.Leaves), len(in.Buffers))
	}
	return in, nil
}

// DecodeVerdict decodes a Verdict of at most MaxVerdictBytes.
func DecodeVerdict(b []byte) (Verdict, error) {
	var v Verdict
	if err := decode(b, MaxVerdictBytes, "verdict", &v); err != nil {
		return Verdict{}, err
	}
	if !v.Winner.valid() || v.Loser != v.Winner.Other() {
		return Verdict{}, fmt.Errorf("fraud: verdict with winner %q and loser %q", v.Winner, v.Loser)
	}
	return v, nil
}

// Size is the length of v's JSON encoding (what a move costs on the wire).
func Size(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return 0
	}
	return len(b)
}

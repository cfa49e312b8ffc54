package p2p

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/paper"
)

// Types of papers-topic messages.
const (
	PaperTypePaper        = "paper"
	PaperTypeReview       = "review"
	PaperTypeBreakthrough = "breakthrough"
)

// PaperMessage is what travels on TopicPapers: a signed paper with the
// cert by which the publishing node vouches for its author's key, a review
// signed by the node it names, or a breakthrough announcement (the paper,
// its cert, and the author node's claimed median, which no receiver
// believes: see package node).
type PaperMessage struct {
	Type   string              `json:"type"`
	Paper  *paper.Signed       `json:"paper,omitempty"`
	Cert   *AgentCert          `json:"cert,omitempty"`
	Review *paper.SignedReview `json:"review,omitempty"`
	// Score is an announcement's claimed median; At its time (unix ms),
	// authenticated by the message signature, by which it must be fresh.
	Score float64 `json:"score,omitempty"`
	At    int64   `json:"at,omitempty"`

	local bool
}

// Marshal encodes m.
func (m PaperMessage) Marshal() ([]byte, error) { return json.Marshal(m) }

// UnmarshalPaperMessage decodes a papers-topic message: exactly one JSON
// object of a known type carrying what that type needs. It does not verify
// signatures (admission does).
func UnmarshalPaperMessage(data []byte) (PaperMessage, error) {
	var m PaperMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil {
		return PaperMessage{}, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if dec.More() {
		return PaperMessage{}, fmt.Errorf("%w: trailing data", errMalformed)
	}
	switch m.Type {
	case PaperTypePaper, PaperTypeBreakthrough:
		if m.Paper == nil || m.Review != nil {
			return PaperMessage{}, fmt.Errorf("%w: a %s message carries a paper and no review", errMalformed, m.Type)
		}
		if m.Type == PaperTypeBreakthrough && m.At == 0 {
			return PaperMessage{}, fmt.Errorf("%w: a breakthrough announcement needs its time", errMalformed)
		}
	case PaperTypeReview:
		if m.Review == nil || m.Paper != nil || m.Cert != nil {
			return PaperMessage{}, fmt.Errorf("%w: a review message carries a review only", errMalformed)
		}
	default:
		return PaperMessage{}, fmt.Errorf("%w: unknown type %q", errMalformed, m.Type)
	}
	return m, nil
}

// PublishPaper checks m as peers will and gossips it on TopicPapers.
func (n *Node) PublishPaper(ctx context.Context, m PaperMessage) error {
	if n.ctx.Err() != nil {
		return ErrClosed
	}
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	if len(data) > n.cfg.MaxMessageBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), n.cfg.MaxMessageBytes)
	}
	if _, err := UnmarshalPaperMessage(data); err != nil {
		return &RejectedError{Reason: ReasonMalformed}
	}
	if err := n.val.admitPaper(admission.Source{Path: "local", Peer: n.ID(), Publisher: n.ID()}, m, len(data)); err != nil {
		return &RejectedError{Reason: admission.ReasonOf(err)}
	}
	if !n.val.publish.allow(n.ID(), n.cfg.Now()) {
		return &RejectedError{Reason: ReasonRateLimited}
	}
	m.local = true
	if err := n.raw[TopicPapers].Publish(ctx, data, pubsub.WithValidatorData(&m)); err != nil {
		return fmt.Errorf("p2p: publishing on %s: %w", TopicPapers, err)
	}
	return nil
}

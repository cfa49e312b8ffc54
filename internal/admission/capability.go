package admission

import (
	"errors"
	"fmt"

	"github.com/hyperspace-ai/hyperspace/internal/capability"
)

// PathInference is the inference plane's stream protocol: capability
// records fetched from the node they describe.
const PathInference = "inference"

// KindCapability is a node's signed capability record (the models it
// serves).
const KindCapability = "capability"

// Capabilities admits a node's signed capability record: at most
// capability.MaxRecordBytes, the common size, time and quota rules (no
// domain), the record's invariants (at most
// capability.MaxModels models, strings of at most capability.MaxNameBytes
// bytes, no NUL), a signature by the key inside the peer id the record
// names (BoundToNode), and a sender that is that node (src.Publisher when
// set, else src.Peer, the authenticated remote of the stream it came by).
// size is its encoded size (0: computed).
func (c *Checker) Capabilities(src Source, s capability.Signed, size int) error {
	if size <= 0 {
		size = encodedSize(s)
	}
	if size > capability.MaxRecordBytes {
		return c.Reject(src, KindCapability, ReasonOversized, fmt.Errorf("%d bytes, limit %d", size, capability.MaxRecordBytes))
	}
	if err := c.checkCommon(src, KindCapability, size, "-", s.Timestamp); err != nil {
		return err
	}
	if err := s.Check(); err != nil {
		return c.Reject(src, KindCapability, ReasonInvalid, err)
	}
	sender := src.Publisher
	if sender == "" {
		sender = src.Peer
	}
	if sender == "" || sender.String() != s.Node {
		return c.Reject(src, KindCapability, ReasonSignerMismatch, fmt.Errorf("record of node %s sent by %q", s.Node, sender))
	}
	// The key inside the node id is the only one BoundToNode accepts.
	pub, err := nodePublicKey(s.Node)
	if err != nil {
		return c.Reject(src, KindCapability, ReasonSignerMismatch, err)
	}
	if err := s.Verify(pub); err != nil {
		if errors.Is(err, capability.ErrInvalid) {
			return c.Reject(src, KindCapability, ReasonInvalid, err)
		}
		return c.Reject(src, KindCapability, ReasonBadSignature, err)
	}
	c.accept(src, KindCapability)
	return nil
}

package p2p

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	pb "github.com/libp2p/go-libp2p-pubsub/pb"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// Envelope is the gossip message of a research topic: a signed receipt and
// the cert by which the publishing node vouches for the receipt's signer.
type Envelope struct {
	Receipt receipt.Signed `json:"receipt"`
	Cert    AgentCert      `json:"cert"`
}

// Marshal encodes e as the bytes gossiped on a research topic.
func (e Envelope) Marshal() ([]byte, error) { return json.Marshal(e) }

// errMalformed wraps every decoding failure.
var errMalformed = errors.New("p2p: malformed envelope")

// UnmarshalEnvelope decodes a research gossip message. It rejects trailing
// data and envelopes without a receipt id; it does not verify signatures.
func UnmarshalEnvelope(data []byte) (Envelope, error) {
	var e Envelope
	// Unmarshal refuses anything but whitespace after the value.
	if err := json.Unmarshal(data, &e); err != nil {
		return Envelope{}, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if !isReceiptID(e.Receipt.ID) {
		return Envelope{}, fmt.Errorf("%w: receipt id %q is not a hex sha256", errMalformed, e.Receipt.ID)
	}
	return e, nil
}

func isReceiptID(id string) bool {
	if len(id) != 64 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// receiptMsgID is the GossipSub message id of research topics: the receipt
// id, so that pubsub's seen-cache drops re-publications of a receipt by any
// peer. Messages that do not parse get "x" + sha256(data), which cannot
// collide with a receipt id, so they still flow into the validator and are
// rejected (and counted) there.
//
// Envelopes marshalled by this package start with {"receipt":{"id":"<id>",
// which is read without parsing the message (every copy of a message
// received from every mesh peer needs its id). A crafted message could put
// a different id there than the one a JSON decoder sees (duplicate keys);
// the validator rejects messages whose id differs from the decoded one.
func receiptMsgID(m *pb.Message) string {
	data := m.GetData()
	if len(data) > len(idPrefix)+65 && string(data[:len(idPrefix)]) == idPrefix && data[len(idPrefix)+64] == '"' {
		if id := string(data[len(idPrefix) : len(idPrefix)+64]); isReceiptID(id) {
			return id
		}
	}
	var probe struct {
		Receipt struct {
			ID string `json:"id"`
		} `json:"receipt"`
	}
	if err := json.Unmarshal(m.GetData(), &probe); err == nil && isReceiptID(probe.Receipt.ID) {
		return probe.Receipt.ID
	}
	return hashMsgID(m)
}

const idPrefix = `{"receipt":{"id":"`

// hashMsgID is the message id of raw topics (papers, inspiration).
func hashMsgID(m *pb.Message) string {
	sum := sha256.Sum256(m.GetData())
	return "x" + hex.EncodeToString(sum[:])
}

// MessageID returns the GossipSub message id the nodes give data published
// on topic: receiptMsgID on research topics, hashMsgID on the others. Other
// implementations (the browser peer) must compute the same.
func MessageID(topic string, data []byte) string {
	m := &pb.Message{Data: data, Topic: &topic}
	if strings.HasPrefix(topic, researchTopicPrefix) {
		return receiptMsgID(m)
	}
	return hashMsgID(m)
}

// researchTopicPrefix starts every TopicForDomain.
const researchTopicPrefix = "hyperspace/research/"

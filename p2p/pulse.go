package p2p

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"

	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/pulse"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// TopicPulse carries pulse rounds' presences and validators' verdicts, so
// that nodes of every site take part.
const TopicPulse = "hyperspace/pulse/1"

// ProbeProtocol is how a validator challenges a node's presence and
// capability claims (see package node for the answers).
const ProbeProtocol = protocol.ID("/hyperspace/probe/1.0.0")

// RelayHopProtocol is circuit relay v2's hop protocol: a relay serves it.
const RelayHopProtocol = protocol.ID("/libp2p/circuit/relay/0.2.0/hop")

// Limits of the probe protocol.
const (
	MaxProbeBytes = 1 << 20
	probeTimeout  = 20 * time.Second
)

// Types of pulse-topic messages.
const (
	PulseTypePresence = "presence"
	PulseTypeVerdict  = "verdict"
	PulseTypeOutcome  = "challenge-outcome"
)

// PulseMessage is what travels on TopicPulse.
type PulseMessage struct {
	Type     string                `json:"type"`
	Presence *pulse.SignedPresence `json:"presence,omitempty"`
	Verdict  *pulse.SignedVerdict  `json:"verdict,omitempty"`
	Outcome  *pulse.SignedOutcome  `json:"outcome,omitempty"`
}

// UnmarshalPulseMessage decodes exactly one pulse message carrying what its
// type needs. Signatures are admission's to check.
func UnmarshalPulseMessage(data []byte) (PulseMessage, error) {
	var m PulseMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil {
		return PulseMessage{}, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if dec.More() {
		return PulseMessage{}, fmt.Errorf("%w: trailing data", errMalformed)
	}
	switch m.Type {
	case PulseTypePresence:
		if m.Presence == nil || m.Verdict != nil || m.Outcome != nil {
			return PulseMessage{}, fmt.Errorf("%w: a presence message carries a presence only", errMalformed)
		}
	case PulseTypeVerdict:
		if m.Verdict == nil || m.Presence != nil || m.Outcome != nil {
			return PulseMessage{}, fmt.Errorf("%w: a verdict message carries a verdict only", errMalformed)
		}
	case PulseTypeOutcome:
		if m.Outcome == nil || m.Presence != nil || m.Verdict != nil {
			return PulseMessage{}, fmt.Errorf("%w: an outcome message carries an outcome only", errMalformed)
		}
	default:
		return PulseMessage{}, fmt.Errorf("%w: unknown type %q", errMalformed, m.Type)
	}
	return m, nil
}

type pulseState struct {
	mu    sync.Mutex
	topic *pubsub.Topic
	subs  map[uint64]func(PulseMessage, peer.ID)
	next  uint64
	probe func(ctx context.Context, from peer.ID, req ProbeRequest) ProbeResponse
}

func (v *validator) admitPulse(src admission.Source, m PulseMessage, size int) error {
	switch m.Type {
	case PulseTypePresence:
		return v.adm.Presence(src, *m.Presence, size)
	case PulseTypeOutcome:
		return v.adm.Outcome(src, *m.Outcome, size)
	}
	return v.adm.Verdict(src, *m.Verdict, size)
}

// pulseTopic joins (once) TopicPulse with its validator and reader.
func (n *Node) pulseTopic() (*pubsub.Topic, error) {
	n.pulse.mu.Lock()
	defer n.pulse.mu.Unlock()
	if n.pulse.topic != nil {
		return n.pulse.topic, nil
	}
	err := n.ps.RegisterTopicValidator(TopicPulse, func(_ context.Context, src peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		if src == n.ID() {
			if _, ok := msg.ValidatorData.(*PulseMessage); ok {
				return pubsub.ValidationAccept
			}
		}
		kind := admission.KindPresence
		if len(msg.GetData()) > n.cfg.MaxMessageBytes {
			return n.val.reject(src, kind, ReasonOversized, pubsub.ValidationReject)
		}
		if r, ok := n.val.rateLimit(src, msg.GetFrom(), kind); !ok {
			return r
		}
		m, err := UnmarshalPulseMessage(msg.GetData())
		if err != nil {
			return n.val.reject(src, kind, ReasonMalformed, pubsub.ValidationReject)
		}
		if _, r := n.val.admitted(n.val.admitPulse(admission.Source{Path: admission.PathGossip, Peer: src, Publisher: msg.GetFrom()}, m, len(msg.GetData()))); r != pubsub.ValidationAccept {
			return r
		}
		msg.ValidatorData = &m
		return pubsub.ValidationAccept
	}, pubsub.WithValidatorInline(true))
	if err != nil {
		return nil, err
	}
	t, err := n.ps.Join(TopicPulse)
	if err != nil {
		_ = n.ps.UnregisterTopicValidator(TopicPulse)
		return nil, err
	}
	sub, err := t.Subscribe(pubsub.WithBufferSize(1024))
	if err != nil {
		return nil, err
	}
	if !n.goOwned("gossip "+TopicPulse, func() {
		defer sub.Cancel()
		for {
			msg, err := sub.Next(n.ctx)
			if err != nil {
				return
			}
			if msg.ReceivedFrom == n.ID() {
				continue
			}
			pm, ok := msg.ValidatorData.(*PulseMessage)
			if !ok {
				continue
			}
			n.pulse.mu.Lock()
			fns := make([]func(PulseMessage, peer.ID), 0, len(n.pulse.subs))
			for _, f := range n.pulse.subs {
				fns = append(fns, f)
			}
			n.pulse.mu.Unlock()
			for _, f := range fns {
				f(*pm, msg.GetFrom())
			}
		}
	}) {
		sub.Cancel()
		return nil, ErrClosed
	}
	n.pulse.topic = t
	return t, nil
}

// JoinPulse subscribes this node to TopicPulse; fn is called (on the
// reader goroutine: keep it short) with every admitted message of another
// node. The returned function stops the calls.
func (n *Node) JoinPulse(fn func(m PulseMessage, from peer.ID)) (func(), error) {
	if _, err := n.pulseTopic(); err != nil {
		return nil, err
	}
	n.pulse.mu.Lock()
	defer n.pulse.mu.Unlock()
	if n.pulse.subs == nil {
		n.pulse.subs = map[uint64]func(PulseMessage, peer.ID){}
	}
	id := n.pulse.next
	n.pulse.next++
	n.pulse.subs[id] = fn
	return func() {
		n.pulse.mu.Lock()
		delete(n.pulse.subs, id)
		n.pulse.mu.Unlock()
	}, nil
}

// PublishPulse checks m as peers will and gossips it. It returns the
// message's size in bytes.
func (n *Node) PublishPulse(ctx context.Context, m PulseMessage) (int, error) {
	if n.ctx.Err() != nil {
		return 0, ErrClosed
	}
	data, err := json.Marshal(m)
	if err != nil {
		return 0, err
	}
	if len(data) > n.cfg.MaxMessageBytes {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), n.cfg.MaxMessageBytes)
	}
	if _, err := UnmarshalPulseMessage(data); err != nil {
		return 0, &RejectedError{Reason: ReasonMalformed}
	}
	if err := n.val.admitPulse(admission.Source{Path: "local", Peer: n.ID(), Publisher: n.ID()}, m, len(data)); err != nil {
		return 0, &RejectedError{Reason: admission.ReasonOf(err)}
	}
	t, err := n.pulseTopic()
	if err != nil {
		return 0, err
	}
	if err := t.Publish(ctx, data, pubsub.WithValidatorData(&m)); err != nil {
		return 0, fmt.Errorf("p2p: publishing on %s: %w", TopicPulse, err)
	}
	return len(data), nil
}

// Kinds of probe.
const (
	ProbePresence   = "presence"   // sign the nonce with the node key
	ProbeStorage    = "storage"    // serve the record with this id
	ProbeValidation = "validation" // verify these receipts
	ProbeEmbedding  = "embedding"  // embed these texts
)

// ProbeRequest is a validator's challenge.
type ProbeRequest struct {
	Kind     string           `json:"kind"`
	Round    int64            `json:"round"`
	Nonce    string           `json:"nonce"`
	Record   string           `json:"record,omitempty"`
	Receipts []receipt.Signed `json:"receipts,omitempty"`
	Texts    []string         `json:"texts,omitempty"`
}

// ProbeResponse is the probed node's answer.
type ProbeResponse struct {
	OK        bool            `json:"ok"`
	Error     string          `json:"error,omitempty"`
	Signature string          `json:"signature,omitempty"`
	Record    *receipt.Signed `json:"record,omitempty"`
	Valid     []bool          `json:"valid,omitempty"`
	Vectors   [][]float32     `json:"vectors,omitempty"`
}

// UnmarshalProbeRequest decodes one bounded probe request.
func UnmarshalProbeRequest(b []byte) (ProbeRequest, error) {
	var r ProbeRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&r); err != nil || dec.More() {
		return ProbeRequest{}, fmt.Errorf("%w: probe request", errMalformed)
	}
	switch r.Kind {
	case ProbePresence, ProbeStorage, ProbeValidation, ProbeEmbedding:
	default:
		return ProbeRequest{}, fmt.Errorf("%w: unknown probe %q", errMalformed, r.Kind)
	}
	if len(r.Nonce) == 0 || len(r.Nonce) > 128 || len(r.Receipts) > 8 || len(r.Texts) > 8 || len(r.Record) > 128 {
		return ProbeRequest{}, fmt.Errorf("%w: probe request out of bounds", errMalformed)
	}
	for _, t := range r.Texts {
		if len(t) > 4096 {
			return ProbeRequest{}, fmt.Errorf("%w: probe text too long", errMalformed)
		}
	}
	return r, nil
}

// ServeProbes makes this node answer probes with h.
func (n *Node) ServeProbes(h func(ctx context.Context, from peer.ID, req ProbeRequest) ProbeResponse) {
	n.pulse.mu.Lock()
	n.pulse.probe = h
	n.pulse.mu.Unlock()
	n.host.SetStreamHandler(ProbeProtocol, func(s network.Stream) {
		n.serveOneFrame(s, probeTimeout, MaxProbeBytes, func(b []byte) ([]byte, bool) {
			var resp ProbeResponse
			req, err := UnmarshalProbeRequest(b)
			if err != nil {
				resp.Error = err.Error()
			} else {
				n.pulse.mu.Lock()
				h := n.pulse.probe
				n.pulse.mu.Unlock()
				resp = h(n.ctx, s.Conn().RemotePeer(), req)
			}
			out, _ := json.Marshal(resp)
			return out, true
		})
	})
}

// Probe sends req to p and returns its answer and the bytes exchanged.
func (n *Node) Probe(ctx context.Context, p peer.ID, req ProbeRequest) (ProbeResponse, int, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	s, err := n.host.NewStream(ctx, p, ProbeProtocol)
	if err != nil {
		return ProbeResponse{}, 0, err
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(d)
	}
	r, w := bufio.NewReader(s), bufio.NewWriter(s)
	b, _ := json.Marshal(req)
	sent, err := writeFrame(w, b)
	if err != nil {
		return ProbeResponse{}, sent, err
	}
	out, got, err := readFrame(r, MaxProbeBytes)
	if err != nil {
		return ProbeResponse{}, sent + got, err
	}
	var resp ProbeResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return ProbeResponse{}, sent + got, fmt.Errorf("%w: probe response", errMalformed)
	}
	return resp, sent + got, nil
}

// Supports reports whether peer p advertised protocol proto (identify).
func (n *Node) Supports(p peer.ID, proto protocol.ID) bool {
	ps, err := n.host.Peerstore().SupportsProtocols(p, proto)
	return err == nil && len(ps) > 0
}

// ConnectPeer dials p at addrs (multiaddr strings) unless connected.
func (n *Node) ConnectPeer(ctx context.Context, p peer.ID, addrs []string) error {
	if n.host.Network().Connectedness(p) == network.Connected {
		return nil
	}
	info := peer.AddrInfo{ID: p}
	for _, a := range addrs {
		ai, err := peer.AddrInfoFromString(a)
		if err == nil && ai.ID == p {
			info.Addrs = append(info.Addrs, ai.Addrs...)
			continue
		}
		if ma, err := parseMultiaddr(a); err == nil {
			info.Addrs = append(info.Addrs, ma)
		}
	}
	if len(info.Addrs) == 0 && len(n.host.Peerstore().Addrs(p)) == 0 {
		return errors.New("p2p: no address for " + p.String())
	}
	return n.host.Connect(ctx, info)
}

func parseMultiaddr(s string) (multiaddr.Multiaddr, error) { return multiaddr.NewMultiaddr(s) }

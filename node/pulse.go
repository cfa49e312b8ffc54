package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/activities"
	"github.com/hyperspace-ai/hyperspace/internal/admission"
	"github.com/hyperspace-ai/hyperspace/internal/embed"
	"github.com/hyperspace-ai/hyperspace/internal/pulse"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/p2p"
)

// DefaultPulseInterval is a pulse round's length.
const DefaultPulseInterval = 90 * time.Second

// DefaultCapabilities are what a node claims unless told otherwise: what
// every node does (research: its agents run experiments; storage: it holds
// the leaderboard replica; validation: it judges pulse rounds;
// orchestration: it runs a Temporal worker).
var DefaultCapabilities = []string{pulse.CapResearch, pulse.CapStorage, pulse.CapValidation, pulse.CapOrchestration}

// probeDomain separates presence-probe signatures from every other use of
// the node key.
const probeDomain = "hyperspace-pulse-probe/v1\n"

// pulseNode is the node's part in pulse rounds.
type pulseNode struct {
	mu       sync.Mutex
	caps     []string
	interval time.Duration
	shared   []string // receipts shared since the last presence
	embedder func(texts []string) ([][]float32, error)
}

// noteShared remembers a receipt this node shared, for its next presence.
func (n *Node) noteShared(id string) {
	n.pulse.mu.Lock()
	defer n.pulse.mu.Unlock()
	if !slices.Contains(n.pulse.shared, id) {
		n.pulse.shared = append(n.pulse.shared, id)
	}
	if len(n.pulse.shared) > pulse.MaxReceipts {
		n.pulse.shared = n.pulse.shared[len(n.pulse.shared)-pulse.MaxReceipts:]
	}
}

// Presence signs this node's presence for the current round, naming the
// receipts it shared since its last one.
func (n *Node) Presence(now time.Time) (pulse.SignedPresence, error) {
	n.pulse.mu.Lock()
	caps := slices.Clone(n.pulse.caps)
	iv := n.pulse.interval
	rec := slices.Clone(n.pulse.shared)
	n.pulse.mu.Unlock()
	ms := now.UnixMilli()
	return pulse.SignPresence(pulse.Presence{Node: n.PeerID(), Round: pulse.RoundOf(ms, iv.Milliseconds()), IntervalMs: iv.Milliseconds(),
		Timestamp: ms, Capabilities: caps, Receipts: rec}, n.self)
}

// PublishPresence stores (when the node has a store) and gossips this
// node's presence for the current round; the receipts it named are not
// named again.
func (n *Node) PublishPresence(ctx context.Context) (pulse.SignedPresence, error) {
	sp, err := n.Presence(time.Now())
	if err != nil {
		return sp, err
	}
	if n.store != nil {
		if _, err := n.store.InsertPresence(ctx, sp, "site"); err != nil {
			return sp, err
		}
	}
	if _, err := n.P2P.PublishPulse(ctx, p2p.PulseMessage{Type: p2p.PulseTypePresence, Presence: &sp}); err != nil {
		return sp, err
	}
	n.pulse.mu.Lock()
	n.pulse.shared = slices.DeleteFunc(n.pulse.shared, func(id string) bool { return slices.Contains(sp.Presence.Receipts, id) })
	n.pulse.mu.Unlock()
	return sp, nil
}

// pulseLoop publishes a presence in every round, a tenth into it (so that
// clocks a little apart agree on the round).
func (n *Node) pulseLoop(ctx context.Context) {
	iv := n.pulse.interval
	for {
		now := time.Now()
		next := now.Truncate(iv).Add(iv / 10)
		if !next.After(now) {
			next = next.Add(iv)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
		if _, err := n.PublishPresence(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("pulse presence", "error", err)
		}
	}
}

// absorbPulse stores presences heard over gossip.
func (n *Node) absorbPulse(ctx context.Context, m p2p.PulseMessage, _ peer.ID) {
	if n.store == nil || m.Type != p2p.PulseTypePresence {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := n.store.InsertPresence(cctx, *m.Presence, "network"); err != nil && ctx.Err() == nil {
		n.log.Warn("store presence", "error", err)
	}
}

// answerProbe is this node's side of a validator's probes.
func (n *Node) answerProbe(_ context.Context, _ peer.ID, req p2p.ProbeRequest) p2p.ProbeResponse {
	switch req.Kind {
	case p2p.ProbePresence:
		return p2p.ProbeResponse{OK: true, Signature: base64.StdEncoding.EncodeToString(n.self.Sign(probeBytes(req.Round, req.Nonce)))}
	case p2p.ProbeStorage:
		if s, ok := n.Replica.Get(req.Record); ok {
			return p2p.ProbeResponse{OK: true, Record: &s}
		}
		return p2p.ProbeResponse{Error: "not held"}
	case p2p.ProbeValidation:
		valid := make([]bool, len(req.Receipts))
		for i, s := range req.Receipts {
			valid[i] = s.Verify() == nil
		}
		return p2p.ProbeResponse{OK: true, Valid: valid}
	case p2p.ProbeEmbedding:
		n.pulse.mu.Lock()
		e := n.pulse.embedder
		n.pulse.mu.Unlock()
		if e == nil {
			return p2p.ProbeResponse{Error: "this node serves no embedding model"}
		}
		vs, err := e(req.Texts)
		if err != nil {
			return p2p.ProbeResponse{Error: err.Error()}
		}
		return p2p.ProbeResponse{OK: true, Vectors: vs}
	}
	return p2p.ProbeResponse{Error: "unknown probe"}
}

func probeBytes(round int64, nonce string) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(round))
	return append(append([]byte(probeDomain), b[:]...), nonce...)
}

// SetEmbedder makes the node answer embedding probes with e.
func (n *Node) SetEmbedder(e func(texts []string) ([][]float32, error)) {
	n.pulse.mu.Lock()
	n.pulse.embedder = e
	n.pulse.mu.Unlock()
}

// cheapDomains re-run their whole evaluation in a spot check.
var cheapDomains = map[string]bool{"search": true, "finance": true, "skills": true, "causes": true}

// Validate judges a round's presences as this node: the presence's
// signature and binding, a liveness probe (a fresh nonce the node must sign
// with its key now), each claimed capability's probe, and each work
// receipt's integrity (held in the replica, vouched by the presence's node,
// signature) with a sampled re-run for the cheap domains. It returns the
// signed verdict and the bytes the probes moved.
func (n *Node) Validate(ctx context.Context, req activities.PulseValidateRequest) (pulse.SignedVerdict, int64, error) {
	var bytes int64
	self := n.PeerID()
	v := pulse.Verdict{Round: req.Round, Validator: self, Timestamp: time.Now().UnixMilli()}
	seen := map[string]bool{}
	recs := n.replicaRecords() // read once for every probe of the round
	for _, sp := range req.Presences {
		p := sp.Presence
		if seen[p.Node] || p.Node == self || p.Round != req.Round {
			continue
		}
		seen[p.Node] = true
		nv := pulse.NodeVerdict{Node: p.Node, Presence: sp.ID, Verified: []string{}, Failed: map[string]string{}, Work: []pulse.WorkCheck{}}
		pid, err := peer.Decode(p.Node)
		if err == nil {
			err = sp.Verify(admission.BoundToNode)
		}
		if err != nil {
			nv.Failed["presence"] = "signature: " + err.Error()
			v.Nodes = append(v.Nodes, nv)
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		b, err := n.probePresence(pctx, pid, req.Round, req.Addrs[p.Node])
		cancel()
		bytes += int64(b)
		if err != nil {
			nv.Failed["presence"] = err.Error()
			v.Nodes = append(v.Nodes, nv)
			continue
		}
		nv.Present = true
		var work []receipt.Signed
		for _, id := range p.Receipts {
			wc, s := n.checkWork(ctx, req, p.Node, id)
			nv.Work = append(nv.Work, wc)
			if wc.OK {
				work = append(work, s)
			}
		}
		for _, c := range p.Capabilities {
			b, err := n.probeCapability(ctx, pid, req.Round, c, work, recs)
			bytes += int64(b)
			if err != nil {
				nv.Failed[c] = err.Error()
			} else {
				nv.Verified = append(nv.Verified, c)
			}
		}
		v.Nodes = append(v.Nodes, nv)
	}
	sv, err := pulse.SignVerdict(v, n.self)
	return sv, bytes, err
}

func nonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (n *Node) probePresence(ctx context.Context, pid peer.ID, round int64, addrs []string) (int, error) {
	if err := n.P2P.ConnectPeer(ctx, pid, addrs); err != nil {
		return 0, fmt.Errorf("unreachable: %w", err)
	}
	nc := nonce()
	resp, b, err := n.P2P.Probe(ctx, pid, p2p.ProbeRequest{Kind: p2p.ProbePresence, Round: round, Nonce: nc})
	if err != nil {
		return b, fmt.Errorf("liveness probe: %w", err)
	}
	pub, err := pid.ExtractPublicKey()
	if err != nil {
		return b, err
	}
	raw, err := pub.Raw()
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return b, errors.New("node key is not Ed25519")
	}
	sig, err := base64.StdEncoding.DecodeString(resp.Signature)
	if err != nil || !resp.OK || !ed25519.Verify(raw, probeBytes(round, nc), sig) {
		return b, errors.New("liveness probe: the answer is not signed by the node's key")
	}
	return b, nil
}

// checkWork checks one work receipt a presence names.
func (n *Node) checkWork(ctx context.Context, req activities.PulseValidateRequest, node, id string) (pulse.WorkCheck, receipt.Signed) {
	wc := pulse.WorkCheck{Receipt: id, How: "signature"}
	s, ok := n.Replica.Get(id)
	if !ok {
		wc.Reason = "not in this validator's replica"
		return wc, s
	}
	r := s.Receipt
	wc.Domain = r.Domain
	if err := s.Verify(); err != nil {
		wc.Reason = "signature: " + err.Error()
		return wc, s
	}
	if s.Vouch == nil || s.Vouch.Node != node {
		wc.Reason = "not vouched by the presence's node"
		return wc, s
	}
	wc.Units = pulse.UnitsOf(r)
	// The cheap domains re-run a sampled RerunFraction of receipts. ML
	// receipts are spot-checked: values in range always, and a sampled fifth
	// of the re-run fraction re-trained in full when the run was not cut
	// short by a wall-clock budget (then the trainer is bit-deterministic and
	// the metric must match exactly). A mismatch is settled by a fraud-proof
	// challenge (req.Mismatch starts one).
	rerun := false
	switch {
	case cheapDomains[r.Domain]:
		rerun = sample(req.Round, n.PeerID(), id) < req.RerunFraction
	case r.Domain == "ml":
		wc.How = "spot-check"
		if v := r.Metric.Value; !(v > 0 && v < 20) {
			wc.Reason = fmt.Sprintf("val_loss %v is not a loss of this model", v)
			return wc, s
		}
		rerun = r.Result.Values["truncated"] == 0 && sample(req.Round, n.PeerID(), id) < req.RerunFraction/5
	}
	if rerun && req.Rerun != nil {
		wc.How = "rerun"
		got, err := req.Rerun(ctx, s)
		if err != nil {
			wc.Reason = "re-run failed: " + err.Error()
			return wc, s
		}
		if got != r.Metric.Value {
			wc.Reason = fmt.Sprintf("re-run gives %v, the receipt says %v", got, r.Metric.Value)
			if req.Mismatch != nil {
				req.Mismatch(s, got)
			}
			return wc, s
		}
	}
	wc.OK = true
	return wc, s
}

// sample maps (round, validator, receipt) to [0,1).
func sample(round int64, validator, id string) float64 {
	h := sha256.Sum256([]byte(fmt.Sprintf("%d\n%s\n%s", round, validator, id)))
	return float64(binary.BigEndian.Uint64(h[:8])>>11) / (1 << 53)
}

// probeCapability checks one capability claim.
func (n *Node) probeCapability(ctx context.Context, pid peer.ID, round int64, c string, work []receipt.Signed, recs []receipt.Signed) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	switch c {
	case pulse.CapResearch:
		// Recent verifiable research: a work receipt of this round that
		// passed its checks, or one in the replica vouched by the node
		// within the last hour.
		if len(work) > 0 {
			return 0, nil
		}
		cut := time.Now().Add(-time.Hour).UnixMilli()
		for _, s := range recs {
			if s.Vouch != nil && s.Vouch.Node == pid.String() && s.Receipt.Timestamp >= cut {
				return 0, nil
			}
		}
		return 0, errors.New("no verifiable receipt in the last hour")
	case pulse.CapStorage:
		// Serve a record this validator holds, chosen at random.
		good, ok := randomRecord(recs)
		if !ok {
			return 0, errors.New("no record to ask for")
		}
		id := good.ID
		resp, b, err := n.P2P.Probe(ctx, pid, p2p.ProbeRequest{Kind: p2p.ProbeStorage, Round: round, Nonce: nonce(), Record: id})
		if err != nil {
			return b, err
		}
		if !resp.OK || resp.Record == nil || resp.Record.ID != id || resp.Record.Verify() != nil {
			return b, fmt.Errorf("did not serve record %s: %s", id, resp.Error)
		}
		return b, nil
	case pulse.CapValidation:
		// Judge one genuine and one altered receipt correctly.
		good, ok := randomRecord(recs)
		if !ok {
			return 0, errors.New("no record to ask about")
		}
		id := good.ID
		bad := good
		bad.Receipt.Metric.Value += 1
		swap := sample(round, pid.String(), id) < 0.5
		pair := []receipt.Signed{good, bad}
		if swap {
			pair = []receipt.Signed{bad, good}
		}
		resp, b, err := n.P2P.Probe(ctx, pid, p2p.ProbeRequest{Kind: p2p.ProbeValidation, Round: round, Nonce: nonce(), Receipts: pair})
		if err != nil {
			return b, err
		}
		want := []bool{true, false}
		if swap {
			want = []bool{false, true}
		}
		if !resp.OK || !slices.Equal(resp.Valid, want) {
			return b, fmt.Errorf("judged a genuine and an altered receipt as %v", resp.Valid)
		}
		return b, nil
	case pulse.CapEmbedding:
		texts := []string{"training a small transformer language model", "training a small transformer language model quickly", "monthly rebalance of a stock portfolio"}
		resp, b, err := n.P2P.Probe(ctx, pid, p2p.ProbeRequest{Kind: p2p.ProbeEmbedding, Round: round, Nonce: nonce(), Texts: texts})
		if err != nil {
			return b, err
		}
		if !resp.OK || len(resp.Vectors) != 3 {
			return b, fmt.Errorf("no embeddings: %s", resp.Error)
		}
		if near, far := embed.Cosine(resp.Vectors[0], resp.Vectors[1]), embed.Cosine(resp.Vectors[0], resp.Vectors[2]); !(near > far) {
			return b, fmt.Errorf("embeddings do not rank a paraphrase above an unrelated text (%.3f vs %.3f)", near, far)
		}
		return b, nil
	case pulse.CapRelay:
		if n.P2P.Supports(pid, p2p.RelayHopProtocol) {
			return 0, nil
		}
		return 0, errors.New("does not serve circuit relay v2 (hop)")
	case pulse.CapOrchestration:
		// A node of this site runs a Temporal worker on node-<peer>: it
		// heartbeats into the site's nodes table. Other sites' nodes cannot
		// be checked from here.
		if n.store != nil {
			live, err := n.store.LiveNodes(ctx, 30*time.Second)
			if err == nil {
				for _, x := range live {
					if x.PeerID == pid.String() {
						return 0, nil
					}
				}
			}
		}
		return 0, errors.New("not a live worker of this site")
	}
	if c == pulse.CapInference {
		return n.probeInference(ctx, pid, round)
	}
	// proxy, memory: no probe yet, so the claim does not earn.
	return 0, fmt.Errorf("no probe for %s yet: the claim is not verified", c)
}

// replicaRecords is every record of the replica.
func (n *Node) replicaRecords() []receipt.Signed {
	var all []receipt.Signed
	for _, d := range n.Replica.Domains() {
		all = append(all, n.Replica.Records(d)...)
	}
	return all
}

// randomRecord picks one of recs at random.
func randomRecord(recs []receipt.Signed) (receipt.Signed, bool) {
	if len(recs) == 0 {
		return receipt.Signed{}, false
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return recs[binary.BigEndian.Uint64(b[:])%uint64(len(recs))], true
}

// PublishVerdict gossips a verdict this node signed.
func (n *Node) PublishVerdict(ctx context.Context, sv pulse.SignedVerdict) (int, error) {
	return n.P2P.PublishPulse(ctx, p2p.PulseMessage{Type: p2p.PulseTypeVerdict, Verdict: &sv})
}

// PublishOutcome gossips a challenge outcome this node signed as referee.
func (n *Node) PublishOutcome(ctx context.Context, so pulse.SignedOutcome) (int, error) {
	return n.P2P.PublishPulse(ctx, p2p.PulseMessage{Type: p2p.PulseTypeOutcome, Outcome: &so})
}

package p2p

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// DiLoCo across sites. The node that owns a training run announces each
// round on the run's topic (TopicForTraining); a node of any site that has
// joined the run fetches the round's global parameters from the owner over
// TrainingParamsProtocol, trains, and sends its signed pseudo-gradient back
// over TrainingDeltaProtocol. The owner admits a delta only from the peer
// that signed it (the stream's authenticated remote peer), for the round
// that is open, before its deadline, once per peer and round; what the
// delta holds (shape, base, norm) is checked by the owner's TrainingServer.
const (
	TrainingParamsProtocol = protocol.ID("/hyperspace/training/params/1.0.0")
	TrainingDeltaProtocol  = protocol.ID("/hyperspace/training/delta/1.0.0")
	// MaxTrainingFile bounds a parameters or delta file on the wire.
	MaxTrainingFile = 256 << 20
	// maxTrainingRequest bounds the small JSON frames.
	maxTrainingRequest    = 64 << 10
	trainingStreamTimeout = 5 * time.Minute
)

var runIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,47}$`)

// TopicForTraining is the gossip topic of a training run's rounds.
func TopicForTraining(run string) string { return "hyperspace/training/" + run + "/1" }

// RoundAnnouncement opens a round to other sites.
type RoundAnnouncement struct {
	Run        string          `json:"run"`
	Round      int             `json:"round"`  // 0-based
	Global     string          `json:"global"` // content hash of the parameters to train from
	DeadlineMs int64           `json:"deadlineMs"`
	Spec       json.RawMessage `json:"spec"`  // the run's normalised diloco.Spec
	Owner      string          `json:"owner"` // peer id of the announcing node
	At         int64           `json:"at"`    // unix ms
}

// UnmarshalRoundAnnouncement decodes and checks the shape of an announcement.
func UnmarshalRoundAnnouncement(b []byte) (RoundAnnouncement, error) {
	var a RoundAnnouncement
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil || dec.More() {
		return a, fmt.Errorf("%w: round announcement: %v", errMalformed, err)
	}
	if !runIDPattern.MatchString(a.Run) || a.Round < 0 || len(a.Global) != 64 || a.DeadlineMs <= 0 || len(a.Spec) == 0 {
		return a, fmt.Errorf("%w: round announcement fields", errMalformed)
	}
	if _, err := peer.Decode(a.Owner); err != nil {
		return a, fmt.Errorf("%w: owner: %v", errMalformed, err)
	}
	return a, nil
}

// SignedDelta is a remote contributor's pseudo-gradient (a tensor file),
// signed with the contributor node's libp2p key.
type SignedDelta struct {
	Run       string `json:"run"`
	Round     int    `json:"round"`
	Base      string `json:"base"`
	Node      string `json:"node"`
	At        int64  `json:"at"`
	Delta     []byte `json:"-"` // sent raw, in its own frame after the envelope
	Signature []byte `json:"signature"`
}

func (d SignedDelta) signingBytes() []byte {
	h := sha256.Sum256(d.Delta)
	return []byte("hyperspace-training-delta/v1\n" + d.Run + "\n" + strconv.Itoa(d.Round) + "\n" + d.Base + "\n" +
		d.Node + "\n" + strconv.FormatInt(d.At, 10) + "\n" + hex.EncodeToString(h[:]))
}

// SignDelta fills d.Node and d.Signature with priv's identity.
func SignDelta(priv crypto.PrivKey, d *SignedDelta) error {
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return err
	}
	d.Node = id.String()
	sig, err := priv.Sign(d.signingBytes())
	if err != nil {
		return err
	}
	d.Signature = sig
	return nil
}

// ErrBadDeltaSignature: a delta not signed by the peer that sent it.
var ErrBadDeltaSignature = errors.New("p2p: delta signature does not verify for the sending peer")

// Verify checks that d is signed by from (the authenticated remote peer).
func (d SignedDelta) Verify(from peer.ID) error {
	if d.Node != from.String() {
		return fmt.Errorf("%w: names %s, sent by %s", ErrBadDeltaSignature, d.Node, from)
	}
	pub, err := from.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadDeltaSignature, err)
	}
	ok, err := pub.Verify(d.signingBytes(), d.Signature)
	if err != nil || !ok {
		return ErrBadDeltaSignature
	}
	return nil
}

// TrainingServer is the owner's side: it serves parameters and judges deltas.
type TrainingServer interface {
	// Params returns the parameters file with content hash hash of run.
	Params(ctx context.Context, run, hash string) ([]byte, error)
	// Delta admits or rejects a delta sent (and signed) by from; the error
	// says why it was refused.
	Delta(ctx context.Context, from peer.ID, d SignedDelta, size int) error
}

type paramsRequest struct {
	Run  string `json:"run"`
	Hash string `json:"hash"`
}

type trainingReply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// training is the node's state for DiLoCo across sites.
type training struct {
	mu     sync.Mutex
	server TrainingServer
	topics map[string]*pubsub.Topic
}

// ServeTraining makes this node answer parameter fetches and accept deltas
// through s.
func (n *Node) ServeTraining(s TrainingServer) {
	n.train.mu.Lock()
	n.train.server = s
	n.train.mu.Unlock()
	n.host.SetStreamHandler(TrainingParamsProtocol, n.handleParams)
	n.host.SetStreamHandler(TrainingDeltaProtocol, n.handleDelta)
}

func (n *Node) trainingServer() TrainingServer {
	n.train.mu.Lock()
	defer n.train.mu.Unlock()
	return n.train.server
}

// trainingTopic joins (once) the run's topic with its validator.
func (n *Node) trainingTopic(run string) (*pubsub.Topic, error) {
	if !runIDPattern.MatchString(run) {
		return nil, fmt.Errorf("p2p: bad training run id %q", run)
	}
	n.train.mu.Lock()
	defer n.train.mu.Unlock()
	name := TopicForTraining(run)
	if t := n.train.topics[name]; t != nil {
		return t, nil
	}
	err := n.ps.RegisterTopicValidator(name, func(_ context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		if len(m.Data) > maxTrainingRequest {
			n.stats.reject(ReasonOversized)
			return pubsub.ValidationReject
		}
		a, err := UnmarshalRoundAnnouncement(m.Data)
		if err != nil || a.Run != run {
			n.stats.reject(ReasonMalformed)
			return pubsub.ValidationReject
		}
		// Only the owner may announce its rounds: the message's signed
		// author is the announced owner.
		if m.GetFrom() == "" || m.GetFrom().String() != a.Owner {
			n.stats.reject(ReasonSignerMismatch)
			return pubsub.ValidationReject
		}
		now := n.cfg.Now()
		if at := time.UnixMilli(a.At); at.After(now.Add(2*time.Minute)) || at.Before(now.Add(-10*time.Minute)) {
			n.stats.reject(ReasonStale)
			return pubsub.ValidationIgnore
		}
		m.ValidatorData = a
		return pubsub.ValidationAccept
	}, pubsub.WithValidatorInline(true))
	if err != nil {
		return nil, err
	}
	t, err := n.ps.Join(name)
	if err != nil {
		_ = n.ps.UnregisterTopicValidator(name)
		return nil, err
	}
	n.train.topics[name] = t
	return t, nil
}

// AnnounceRound publishes a round of a run this node owns.
func (n *Node) AnnounceRound(ctx context.Context, a RoundAnnouncement) error {
	a.Owner = n.ID().String()
	if a.At == 0 {
		a.At = n.cfg.Now().UnixMilli()
	}
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if _, err := UnmarshalRoundAnnouncement(b); err != nil {
		return err
	}
	t, err := n.trainingTopic(a.Run)
	if err != nil {
		return err
	}
	return t.Publish(ctx, b)
}

// JoinTraining subscribes to a run's rounds. The channel closes when the
// node closes or leave is called.
func (n *Node) JoinTraining(run string) (<-chan RoundAnnouncement, func(), error) {
	t, err := n.trainingTopic(run)
	if err != nil {
		return nil, nil, err
	}
	sub, err := t.Subscribe()
	if err != nil {
		return nil, nil, err
	}
	out := make(chan RoundAnnouncement, 4)
	if !n.goOwned("training-"+run, func() {
		defer close(out)
		for {
			m, err := sub.Next(n.ctx)
			if err != nil {
				return
			}
			if m.ReceivedFrom == n.ID() {
				continue
			}
			a, ok := m.ValidatorData.(RoundAnnouncement)
			if !ok {
				continue
			}
			select {
			case out <- a:
			default: // a slow consumer skips rounds rather than stall gossip
			}
		}
	}) {
		sub.Cancel()
		return nil, nil, ErrClosed
	}
	return out, sub.Cancel, nil
}

func (n *Node) handleParams(s network.Stream) {
	n.serveTrainingStream(s, n.serveParams)
}

// serveTrainingStream runs an inbound training stream's handler with the
// node's lifetime, a deadline and buffered I/O.
func (n *Node) serveTrainingStream(s network.Stream, h func(s network.Stream, r *bufio.Reader, w *bufio.Writer)) {
	if !n.track() {
		_ = s.Reset()
		return
	}
	defer n.wg.Done()
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(trainingStreamTimeout))
	h(s, bufio.NewReader(s), bufio.NewWriter(s))
}

func (n *Node) serveParams(s network.Stream, r *bufio.Reader, w *bufio.Writer) {
	b, _, err := readFrame(r, maxTrainingRequest)
	if err != nil {
		_ = s.Reset()
		return
	}
	var req paramsRequest
	srv := n.trainingServer()
	var file []byte
	if err = json.Unmarshal(b, &req); err == nil && srv != nil {
		file, err = srv.Params(n.ctx, req.Run, req.Hash)
	} else if srv == nil {
		err = errors.New("this node serves no training runs")
	}
	reply := trainingReply{OK: err == nil}
	if err != nil {
		reply.Error = err.Error()
	}
	rb, _ := json.Marshal(reply)
	if _, err := writeFrame(w, rb); err != nil || !reply.OK {
		return
	}
	_, _ = writeFrame(w, file)
}

// FetchParams downloads a run's parameters file (content hash hash) from
// owner and checks its hash.
func (n *Node) FetchParams(ctx context.Context, owner peer.ID, run, hash string) ([]byte, error) {
	s, err := n.host.NewStream(ctx, owner, TrainingParamsProtocol)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(trainingStreamTimeout))
	r, w := bufio.NewReader(s), bufio.NewWriter(s)
	req, _ := json.Marshal(paramsRequest{Run: run, Hash: hash})
	if _, err := writeFrame(w, req); err != nil {
		return nil, err
	}
	if err := readReply(r, "parameters"); err != nil {
		return nil, err
	}
	file, _, err := readFrame(r, MaxTrainingFile)
	if err != nil {
		return nil, err
	}
	if h := sha256.Sum256(file); hex.EncodeToString(h[:]) != hash {
		return nil, errors.New("p2p: parameters do not match their content hash")
	}
	return file, nil
}

func (n *Node) handleDelta(s network.Stream) {
	n.serveTrainingStream(s, n.serveDelta)
}

func (n *Node) serveDelta(s network.Stream, r *bufio.Reader, w *bufio.Writer) {
	b, n1, err := readFrame(r, maxTrainingRequest)
	if err != nil {
		_ = s.Reset()
		return
	}
	delta, n2, err := readFrame(r, MaxTrainingFile)
	if err != nil {
		_ = s.Reset()
		return
	}
	var d SignedDelta
	srv := n.trainingServer()
	switch {
	case srv == nil:
		err = errors.New("this node serves no training runs")
	case json.Unmarshal(b, &d) != nil:
		err = fmt.Errorf("%w: delta envelope", errMalformed)
	default:
		d.Delta = delta
		err = srv.Delta(n.ctx, s.Conn().RemotePeer(), d, n1+n2)
	}
	reply := trainingReply{OK: err == nil}
	if err != nil {
		reply.Error = err.Error()
	}
	rb, _ := json.Marshal(reply)
	_, _ = writeFrame(w, rb)
}

// SendDelta sends a signed delta to the run's owner; the error carries the
// owner's reason when it refused it.
func (n *Node) SendDelta(ctx context.Context, owner peer.ID, d SignedDelta) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	s, err := n.host.NewStream(ctx, owner, TrainingDeltaProtocol)
	if err != nil {
		return err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(trainingStreamTimeout))
	r, w := bufio.NewReader(s), bufio.NewWriter(s)
	if _, err := writeFrame(w, b); err != nil {
		return err
	}
	if _, err := writeFrame(w, d.Delta); err != nil {
		return err
	}
	return readReply(r, "the delta")
}

// readReply reads the owner's answer frame; a refusal is an error naming what.
func readReply(r *bufio.Reader, what string) error {
	rb, _, err := readFrame(r, maxTrainingRequest)
	if err != nil {
		return err
	}
	var reply trainingReply
	if err := json.Unmarshal(rb, &reply); err != nil {
		return err
	}
	if !reply.OK {
		return fmt.Errorf("p2p: owner refused %s: %s", what, reply.Error)
	}
	return nil
}

// PrivKey is the node's libp2p identity key (it signs deltas).
func (n *Node) PrivKey() crypto.PrivKey { return n.host.Peerstore().PrivKey(n.ID()) }

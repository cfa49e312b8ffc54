package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hyperspace-ai/hyperspace/internal/crdt"
	"github.com/hyperspace-ai/hyperspace/p2p"
)

// NetworkNode is a node: its p2p host and its leaderboard replica.
type NetworkNode struct {
	P2P     *p2p.Node
	Replica *crdt.Replica
}

func (s *Server) networkRoutes(v1 *gin.RouterGroup) {
	v1.GET("/peers", s.peers)
	v1.GET("/gossip", s.gossip)
	v1.GET("/gossip/stream", s.gossipStream)
	v1.GET("/network/leaderboard/:domain", s.networkLeaderboard)
}

func (s *Server) noNode(c *gin.Context) bool {
	if s.Node == nil || s.Node.P2P == nil {
		s.writeErr(c, newErr(http.StatusNotFound, CodeNotFound, "this process runs no P2P node (start `hyperspace node` or `hyperspace dev --nodes N`)"))
		return true
	}
	return false
}

// PeerView is one connected peer.
type PeerView struct {
	ID        string   `json:"id"`
	Addrs     []string `json:"addrs"`
	Score     *float64 `json:"score,omitempty"`
	Topics    []string `json:"topics"`
	Mesh      []string `json:"mesh"`
	LatencyMs float64  `json:"latencyMs,omitempty"`
}

func (s *Server) peers(c *gin.Context) {
	if s.noNode(c) {
		return
	}
	out := []PeerView{}
	for _, p := range s.Node.P2P.Peers() {
		v := PeerView{ID: p.ID.String(), Topics: orEmpty(p.Topics), Mesh: orEmpty(p.Mesh), LatencyMs: float64(p.Latency.Microseconds()) / 1000}
		for _, a := range p.Addrs {
			v.Addrs = append(v.Addrs, a.String())
		}
		if p.Scored {
			sc := p.Score
			v.Score = &sc
		}
		out = append(out, v)
	}
	var addrs []string
	for _, a := range s.Node.P2P.Addrs() {
		addrs = append(addrs, a.String())
	}
	c.JSON(http.StatusOK, gin.H{"self": gin.H{"id": s.Node.P2P.ID().String(), "addrs": addrs}, "peers": out, "stats": s.Node.P2P.Stats()})
}

func orEmpty(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}

// FindingView is one finding of the gossip feed.
type FindingView struct {
	ID         string    `json:"id"`
	From       string    `json:"from"`
	Local      bool      `json:"local"`
	ReceivedAt time.Time `json:"receivedAt"`
	Domain     string    `json:"domain"`
	Campaign   string    `json:"campaign"`
	Agent      string    `json:"agent"`
	Metric     float64   `json:"metric"`
	IsNewBest  bool      `json:"isNewBest"`
	Hypothesis string    `json:"hypothesis"`
}

func findingView(f p2p.Finding) FindingView {
	r := f.Receipt.Receipt
	return FindingView{ID: f.Receipt.ID, From: f.From.String(), Local: f.Local, ReceivedAt: f.ReceivedAt,
		Domain: r.Domain, Campaign: r.Campaign, Agent: r.Agent, Metric: r.Metric.Value, IsNewBest: r.IsNewBest, Hypothesis: r.Hypothesis}
}

func (s *Server) gossip(c *gin.Context) {
	if s.noNode(c) {
		return
	}
	limit, _, err := pageParams(c, 50, 1000)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	out := []FindingView{}
	for _, f := range s.Node.P2P.Recent(limit) {
		out = append(out, findingView(f))
	}
	c.JSON(http.StatusOK, gin.H{"findings": out})
}

// gossipStream is a server-sent-events stream of findings as they arrive.
func (s *Server) gossipStream(c *gin.Context) {
	if s.noNode(c) {
		return
	}
	ch, cancel := s.Node.P2P.Subscribe()
	defer cancel()
	w := c.Writer
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": hyperspace findings\n\n")
	w.Flush()
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-c.Request.Context().Done():
			return
		case <-ping.C:
			fmt.Fprint(w, ": ping\n\n")
			w.Flush()
		case f, ok := <-ch:
			if !ok {
				return
			}
			b, _ := json.Marshal(findingView(f))
			fmt.Fprintf(w, "id: %s\nevent: finding\ndata: %s\n\n", f.Receipt.ID, b)
			w.Flush()
		}
	}
}

// networkLeaderboard ranks what the node's CRDT replica holds (every node
// converges to the same one).
func (s *Server) networkLeaderboard(c *gin.Context) {
	if s.noNode(c) {
		return
	}
	d, ok := s.domainParam(c)
	if !ok {
		return
	}
	limit, _, err := pageParams(c, 20, 500)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	entries := s.Node.Replica.Top(d.Name(), d.Metric().Direction, limit)
	if entries == nil {
		entries = []crdt.Entry{}
	}
	c.JSON(http.StatusOK, gin.H{"domain": d.Name(), "metric": d.Metric(), "records": s.Node.Replica.Len(d.Name()),
		"stateHash": s.Node.Replica.StateHash(d.Name()), "entries": entries})
}

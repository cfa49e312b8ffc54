package api

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/internal/store"
)

// DomainView describes one research domain.
type DomainView struct {
	Name        string         `json:"name"`
	Metric      domains.Metric `json:"metric"`
	Space       domains.Space  `json:"space"`
	Baseline    domains.Config `json:"baseline"`
	Description string         `json:"description"`
}

func domainView(d domains.Domain) DomainView {
	return DomainView{Name: d.Name(), Metric: d.Metric(), Space: d.Space(), Baseline: d.Baseline(), Description: d.Describe()}
}

func (s *Server) listDomains(c *gin.Context) {
	// Causes registered through another process of the site appear too.
	if defs, err := s.Store.ListCauses(c.Request.Context()); err == nil {
		for name := range defs {
			_, _, _ = s.resolveDomain(c, name)
		}
	}
	out := []DomainView{}
	for _, n := range s.Domains.Names() {
		d, _ := s.Domains.Get(n)
		out = append(out, domainView(d))
	}
	c.JSON(http.StatusOK, gin.H{"domains": out})
}

func (s *Server) domainParam(c *gin.Context) (domains.Domain, bool) {
	d, ok, err := s.resolveDomain(c, c.Param("domain"))
	if err != nil {
		s.writeErr(c, err)
		return nil, false
	}
	if !ok {
		s.writeErr(c, newErr(http.StatusNotFound, CodeNotFound, "unknown domain "+strconv.Quote(c.Param("domain"))+"; see /api/v1/domains"))
	}
	return d, ok
}

func (s *Server) getDomain(c *gin.Context) {
	if d, ok := s.domainParam(c); ok {
		c.JSON(http.StatusOK, domainView(d))
	}
}

// LeaderboardEntry is one row of a domain leaderboard: a (campaign, agent)'s best run.
type LeaderboardEntry struct {
	Rank         int            `json:"rank"`
	ExperimentID string         `json:"experimentId"`
	CampaignID   string         `json:"campaignId"`
	Agent        string         `json:"agent"`
	PeerID       string         `json:"peerId"`
	Metric       float64        `json:"metric"`     // validation split: what ranks
	TestMetric   *float64       `json:"testMetric"` // held-out test split: reported, never used for ranking
	Hypothesis   string         `json:"hypothesis"`
	Baseline     bool           `json:"baseline"`
	IsNewBest    bool           `json:"isNewBest"`
	Config       map[string]any `json:"config"`
	RunNumber    int            `json:"runNumber"`
	// NoiseFloor is the floor the run's campaign measured (null before one was).
	NoiseFloor *receipt.NoiseFloor `json:"noiseFloor"`
}

func (s *Server) leaderboard(c *gin.Context) {
	d, ok := s.domainParam(c)
	if !ok {
		return
	}
	limit, _, err := pageParams(c, 20, 500)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	rows, err := s.Store.Leaderboard(c.Request.Context(), d.Name(), d.Metric().Direction == domains.Minimize, limit)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	out := make([]LeaderboardEntry, 0, len(rows))
	for i, r := range rows {
		var sr receipt.Signed
		_ = json.Unmarshal(r.Record, &sr)
		out = append(out, LeaderboardEntry{
			Rank: i + 1, ExperimentID: r.ID, CampaignID: r.CampaignID, Agent: r.Agent, PeerID: sr.Receipt.PeerID,
			Metric: r.Metric, TestMetric: r.TestMetric, Hypothesis: sr.Receipt.Hypothesis, Baseline: r.Baseline,
			IsNewBest: r.IsNewBest, Config: sr.Receipt.Config, RunNumber: r.RunNumber, NoiseFloor: sr.Receipt.NoiseFloor,
		})
	}
	c.JSON(http.StatusOK, gin.H{"domain": d.Name(), "metric": d.Metric(), "entries": out})
}

func (s *Server) listExperiments(c *gin.Context) {
	limit, cursor, err := pageParams(c, 50, 1000)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	f := store.ExperimentFilter{CampaignID: c.Query("campaign"), Agent: c.Query("agent"), Domain: c.Query("domain"), Limit: limit, Cursor: cursor}
	if f.Domain != "" {
		if _, ok := s.Domains.Get(f.Domain); !ok {
			s.writeErr(c, fieldErr("domain", "unknown domain "+strconv.Quote(f.Domain)))
			return
		}
	}
	rows, next, err := s.Store.ListExperiments(c.Request.Context(), f)
	if err != nil {
		s.writeErr(c, storeErr(err))
		return
	}
	if rows == nil {
		rows = []store.Experiment{}
	}
	c.JSON(http.StatusOK, gin.H{"experiments": rows, "nextCursor": next})
}

func (s *Server) getExperiment(c *gin.Context) {
	e, err := s.Store.GetExperiment(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.writeErr(c, storeErr(err))
		return
	}
	c.JSON(http.StatusOK, e)
}

func (s *Server) getArtifact(c *gin.Context) {
	e, err := s.Store.GetExperiment(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.writeErr(c, storeErr(err))
		return
	}
	key, ok := e.Artifacts[c.Param("name")]
	if !ok || s.Blob == nil {
		s.writeErr(c, newErr(http.StatusNotFound, CodeNotFound, "experiment "+e.ID+" has no artifact "+strconv.Quote(c.Param("name"))))
		return
	}
	b, err := s.Blob.Get(c.Request.Context(), key)
	if err != nil {
		s.writeErr(c, newErr(http.StatusServiceUnavailable, CodeUnavailable, "read artifact: "+err.Error()))
		return
	}
	ct := "application/octet-stream"
	if json.Valid(b) {
		ct = "application/json"
	}
	c.Data(http.StatusOK, ct, b)
}

func (s *Server) listNodes(c *gin.Context) {
	nodes, err := s.Store.LiveNodes(c.Request.Context(), nodeLiveness)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	if nodes == nil {
		nodes = []store.Node{}
	}
	c.JSON(http.StatusOK, gin.H{"nodes": nodes})
}

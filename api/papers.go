package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/hyperspace-ai/hyperspace/internal/memory"
	"github.com/hyperspace-ai/hyperspace/internal/paper"
	"github.com/hyperspace-ai/hyperspace/internal/store"
)

// ArchiveInfo describes the site's archive for /status.
type ArchiveInfo struct {
	// Location is the local repository's path.
	Location string `json:"location"`
	// Remote is the git remote pushed to ("" none).
	Remote string `json:"remote,omitempty"`
	// GitHub is "owner/repo" when a GitHub mirror is configured.
	GitHub string `json:"github,omitempty"`
	// SnapshotEvery is the snapshot schedule's interval.
	SnapshotEvery string `json:"snapshotEvery,omitempty"`
}

func (s *Server) communityRoutes(v1 *gin.RouterGroup) {
	v1.GET("/papers", s.listPapers)
	v1.GET("/papers/:id", s.getPaper)
	v1.GET("/breakthroughs", s.listBreakthroughs)
	v1.GET("/search", s.search)
	v1.GET("/status", s.status)
}

// PaperSummary is a paper in a list.
type PaperSummary struct {
	ID           string      `json:"id"`
	Title        string      `json:"title"`
	Domain       string      `json:"domain"`
	CampaignID   string      `json:"campaignId"`
	Agent        string      `json:"agent"`
	Number       int         `json:"number"`
	PeerID       string      `json:"peerId"`
	Writer       string      `json:"writer"`
	Status       string      `json:"status"`
	Score        *float64    `json:"score"`
	Breakthrough bool        `json:"breakthrough"`
	Claim        paper.Claim `json:"claim"`
	CreatedAt    string      `json:"createdAt"`
	ReviewedAt   *string     `json:"reviewedAt"`
}

func summarize(p store.Paper) (PaperSummary, paper.Signed, error) {
	var sp paper.Signed
	if err := json.Unmarshal(p.Record, &sp); err != nil {
		return PaperSummary{}, sp, fmt.Errorf("decode paper %s: %w", p.ID, err)
	}
	out := PaperSummary{ID: p.ID, Title: p.Title, Domain: p.Domain, CampaignID: p.CampaignID, Agent: p.Agent, Number: p.Number,
		PeerID: p.PeerID, Writer: sp.Paper.Writer, Status: p.Status, Score: p.Score, Breakthrough: p.Breakthrough,
		Claim: sp.Paper.Claim, CreatedAt: p.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z")}
	if p.ReviewedAt != nil {
		t := p.ReviewedAt.UTC().Format("2006-01-02T15:04:05.000Z")
		out.ReviewedAt = &t
	}
	return out, sp, nil
}

func (s *Server) papers(c *gin.Context, breakthrough bool) {
	limit, _, err := pageParams(c, 50, 500)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	rows, err := s.Store.ListPapers(c.Request.Context(), store.PaperFilter{
		Domain: c.Query("domain"), CampaignID: c.Query("campaign"), Breakthrough: breakthrough, Limit: limit,
	})
	if err != nil {
		s.writeErr(c, err)
		return
	}
	out := make([]PaperSummary, 0, len(rows))
	for _, p := range rows {
		sum, _, err := summarize(p)
		if err != nil {
			s.writeErr(c, err)
			return
		}
		out = append(out, sum)
	}
	key := "papers"
	if breakthrough {
		key = "breakthroughs"
	}
	c.JSON(http.StatusOK, gin.H{key: out})
}

func (s *Server) listPapers(c *gin.Context)        { s.papers(c, false) }
func (s *Server) listBreakthroughs(c *gin.Context) { s.papers(c, true) }

func (s *Server) getPaper(c *gin.Context) {
	ctx := c.Request.Context()
	p, err := s.Store.GetPaper(ctx, c.Param("id"))
	if err != nil {
		s.writeErr(c, storeErr(err))
		return
	}
	sum, sp, err := summarize(p)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	rows, err := s.Store.ListReviews(ctx, p.ID)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	reviews := make([]paper.SignedReview, 0, len(rows))
	for _, r := range rows {
		var sr paper.SignedReview
		if err := json.Unmarshal(r.Record, &sr); err != nil {
			s.writeErr(c, fmt.Errorf("decode review %s: %w", r.ID, err))
			return
		}
		reviews = append(reviews, sr)
	}
	if strings.Contains(c.GetHeader("Accept"), "text/markdown") {
		c.Data(http.StatusOK, "text/markdown; charset=utf-8", []byte(sp.Paper.Markdown))
		return
	}
	c.JSON(http.StatusOK, gin.H{"paper": sum, "markdown": sp.Paper.Markdown, "record": sp, "reviews": reviews})
}

func (s *Server) search(c *gin.Context) {
	q := strings.TrimSpace(c.Query("q"))
	if q == "" {
		s.writeErr(c, fieldErr("q", "required: the text to search for"))
		return
	}
	if len(q) > 2000 {
		s.writeErr(c, fieldErr("q", "at most 2000 characters"))
		return
	}
	k := 10
	if v := c.Query("k"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			s.writeErr(c, fieldErr("k", "must be an integer between 1 and 100"))
			return
		}
		k = n
	}
	kind := c.Query("kind")
	if kind != "" && kind != "experiment" && kind != "paper" {
		s.writeErr(c, fieldErr("kind", `must be "experiment" or "paper"`))
		return
	}
	if s.Memory == nil {
		s.writeErr(c, newErr(http.StatusServiceUnavailable, CodeUnavailable, "semantic memory is not configured on this server"))
		return
	}
	hits, err := s.Memory.Search(c.Request.Context(), q, k, memory.Filter{Domain: c.Query("domain"), Kind: kind})
	if err != nil {
		s.writeErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"query": q, "model": s.Memory.Model(), "results": hits})
}

func (s *Server) status(c *gin.Context) {
	ctx := c.Request.Context()
	papers, reviews, breaks, err := s.Store.CountPapers(ctx, "")
	if err != nil {
		s.writeErr(c, err)
		return
	}
	exps, err := s.Store.CountExperiments(ctx, "")
	if err != nil {
		s.writeErr(c, err)
		return
	}
	nodes, err := s.Store.LiveNodes(ctx, nodeLiveness)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	out := gin.H{
		"counts": gin.H{"experiments": exps, "papers": papers, "reviews": reviews, "breakthroughs": breaks, "liveNodes": len(nodes)},
	}
	if s.Archive != nil {
		arch := gin.H{"location": s.Archive.Location, "remote": s.Archive.Remote, "github": s.Archive.GitHub, "snapshotEvery": s.Archive.SnapshotEvery,
			"lastCommitAt": nil, "lastSnapshot": nil, "lastError": ""}
		states, err := s.Store.ArchiveStates(ctx)
		if err != nil {
			s.writeErr(c, err)
			return
		}
		for _, st := range states {
			if st.Name == "local" {
				arch["lastCommitAt"], arch["lastSnapshot"], arch["lastError"] = st.LastCommitAt, st.LastSnapshot, st.LastError
			}
		}
		out["archive"] = arch
	} else {
		out["archive"] = nil
	}
	c.JSON(http.StatusOK, out)
}

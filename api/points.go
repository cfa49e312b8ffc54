package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/hyperspace-ai/hyperspace/activities"
	"github.com/hyperspace-ai/hyperspace/internal/fraud"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// ChallengeRequest is the body of POST /api/v1/challenges: an operator
// disputes a receipt on behalf of one of the site's nodes.
type ChallengeRequest struct {
	ReceiptID string `json:"receiptId"`
	// Challenger is the site node that plays the challenger (default: the
	// first live node other than the defender). It posts the bond.
	Challenger     string `json:"challenger,omitempty"`
	K              int    `json:"k,omitempty"`
	MoveTimeoutSec int    `json:"moveTimeoutSec,omitempty"`
}

func (s *Server) createChallenge(c *gin.Context) {
	var req ChallengeRequest
	if err := decodeJSON(c, &req); err != nil {
		s.writeErr(c, err)
		return
	}
	if len(req.ReceiptID) != 64 {
		s.writeErr(c, fieldErr("receiptId", "want the 64-hex-digit id of a receipt"))
		return
	}
	if req.K != 0 && (req.K < 2 || req.K > fraud.MaxK) {
		s.writeErr(c, fieldErr("k", "the dissection arity must be 2..64"))
		return
	}
	if req.MoveTimeoutSec < 0 || req.MoveTimeoutSec > 3600 {
		s.writeErr(c, fieldErr("moveTimeoutSec", "must be 0 (default 300) to 3600"))
		return
	}
	ctx := c.Request.Context()
	// The defender is the node that vouched for the receipt: the network's
	// copy carries the vouch (the site's own copy needs none).
	var rc receipt.Signed
	found := false
	if s.Node != nil && s.Node.Replica != nil {
		rc, found = s.Node.Replica.Get(req.ReceiptID)
	}
	if !found {
		if e, err := s.Store.GetExperiment(ctx, req.ReceiptID); err == nil && json.Unmarshal(e.Record, &rc) == nil {
			found = true
		}
	}
	if !found {
		s.writeErr(c, newErr(http.StatusNotFound, CodeNotFound, "no receipt "+req.ReceiptID+" on this site or its node's replica"))
		return
	}
	if rc.Vouch == nil {
		s.writeErr(c, fieldErr("receiptId", "the receipt carries no node vouch (it was never shared by a node): there is no defender"))
		return
	}
	if req.Challenger == "" {
		live, err := s.Store.LiveNodes(ctx, nodeLiveness)
		if err != nil {
			s.writeErr(c, err)
			return
		}
		for _, n := range live {
			if n.PeerID != rc.Vouch.Node {
				req.Challenger = n.PeerID
				break
			}
		}
	}
	in, err := activities.PlanChallenge(ctx, s.Store, activities.Dispute{Receipt: rc, Challenger: req.Challenger, Source: "api"}, req.K, req.MoveTimeoutSec)
	if err != nil {
		s.writeErr(c, fieldErr("challenger", err.Error()))
		return
	}
	wf := workflows.ChallengeWorkflowID(in.ID)
	if _, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: wf, TaskQueue: workflows.TaskQueue}, workflows.ChallengeWorkflow, in); err != nil {
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &already) {
			s.writeErr(c, newErr(http.StatusConflict, CodeConflict, "challenge "+in.ID+" is already running"))
			return
		}
		s.writeErr(c, newErr(http.StatusServiceUnavailable, CodeUnavailable, "could not start the challenge workflow (is Temporal up?): "+err.Error()))
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"id": in.ID, "workflowId": wf, "challenge": in, "links": gin.H{"self": "/api/v1/challenges/" + in.ID}})
}

func (s *Server) pointsRoutes(v1 *gin.RouterGroup) {
	v1.GET("/points", s.listPoints)
	v1.GET("/points/:peerId", s.getPoints)
	v1.GET("/pulse/rounds", s.listPulseRounds)
	v1.GET("/challenges", s.listChallenges)
	v1.POST("/challenges", s.createChallenge)
	v1.GET("/challenges/:id", s.getChallenge)
}

// intQuery reads an optional integer query parameter within [lo, hi].
func intQuery(c *gin.Context, name string, def, lo, hi int64) (int64, error) {
	v := c.Query(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, &apiError{Status: http.StatusBadRequest, ErrorDetail: ErrorDetail{Code: CodeInvalidField, Field: name,
			Message: name + ": want an integer from " + strconv.FormatInt(lo, 10) + " to " + strconv.FormatInt(hi, 10)}}
	}
	return n, nil
}

// listLimited answers GET with ?limit= (default def, 1..most) as
// {key: rows}, rows never null.
func listLimited[T any](s *Server, c *gin.Context, key string, def, most int64, fetch func(ctx context.Context, limit int) ([]T, error)) {
	limit, err := intQuery(c, "limit", def, 1, most)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	rows, err := fetch(c.Request.Context(), int(limit))
	if err != nil {
		s.writeErr(c, err)
		return
	}
	if rows == nil {
		rows = []T{}
	}
	c.JSON(http.StatusOK, gin.H{key: rows})
}

func (s *Server) listPoints(c *gin.Context) {
	listLimited(s, c, "balances", 100, 1000, s.Store.Balances)
}

func (s *Server) getPoints(c *gin.Context) {
	id := c.Param("peerId")
	if _, err := peer.Decode(id); err != nil {
		s.writeErr(c, &apiError{Status: http.StatusBadRequest, ErrorDetail: ErrorDetail{Code: CodeInvalidField, Field: "peerId", Message: "peerId: not a libp2p peer id"}})
		return
	}
	limit, err := intQuery(c, "limit", 100, 1, 1000)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	before, err := intQuery(c, "before", 0, 0, 1<<62)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	ctx := c.Request.Context()
	b, err := s.Store.BalanceOf(ctx, id)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	h, err := s.Store.History(ctx, id, int(limit), before)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	if h == nil {
		h = []store.LedgerEntry{}
	}
	out := gin.H{"balance": b, "history": h}
	if len(h) == int(limit) {
		out["next"] = "/api/v1/points/" + id + "?limit=" + strconv.FormatInt(limit, 10) + "&before=" + strconv.FormatInt(h[len(h)-1].ID, 10)
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) listPulseRounds(c *gin.Context) {
	limit, err := intQuery(c, "limit", 50, 1, 500)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	before, err := intQuery(c, "before", 0, 0, 1<<62)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	rs, err := s.Store.ListPulseRounds(c.Request.Context(), int(limit), before)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	if rs == nil {
		rs = []store.PulseRound{}
	}
	c.JSON(http.StatusOK, gin.H{"rounds": rs})
}

func (s *Server) listChallenges(c *gin.Context) {
	listLimited(s, c, "challenges", 50, 500, s.Store.ListChallenges)
}

func (s *Server) getChallenge(c *gin.Context) {
	ch, err := s.Store.GetChallenge(c.Request.Context(), c.Param("id"))
	if errors.Is(err, store.ErrNotFound) {
		s.writeErr(c, newErr(http.StatusNotFound, CodeNotFound, "no challenge "+c.Param("id")))
		return
	}
	if err != nil {
		s.writeErr(c, err)
		return
	}
	c.JSON(http.StatusOK, ch)
}

package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/hyperspace-ai/hyperspace/internal/diloco"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// TrainingRunRequest is the body of POST /api/v1/training-runs: a DiLoCo
// spec plus an optional id.
type TrainingRunRequest struct {
	ID string `json:"id,omitempty"`
	diloco.Spec
}

// TrainingRunView is a run as the API returns it.
type TrainingRunView struct {
	store.TrainingRun
	Live   *workflows.TrainingProgress `json:"live,omitempty"`
	Rounds []store.TrainingRound       `json:"rounds,omitempty"`
	Links  map[string]string           `json:"links"`
}

func (s *Server) trainingRoutes(v1 *gin.RouterGroup) {
	v1.POST("/training-runs", s.createTrainingRun)
	v1.GET("/training-runs", s.listTrainingRuns)
	v1.GET("/training-runs/:id", s.getTrainingRun)
	v1.POST("/training-runs/:id/stop", s.stopTrainingRun)
}

func (s *Server) trainingView(r store.TrainingRun) TrainingRunView {
	v := TrainingRunView{TrainingRun: r, Links: map[string]string{
		"self":        "/api/v1/training-runs/" + r.ID,
		"leaderboard": "/api/v1/domains/ml/leaderboard",
		"experiments": "/api/v1/experiments?campaign=" + url.QueryEscape(r.ID),
	}}
	if r.ResultID != "" {
		v.Links["result"] = "/api/v1/experiments/" + r.ResultID
		v.Links["checkpoint"] = "/api/v1/experiments/" + r.ResultID + "/artifacts/checkpoint.bin"
	}
	if s.TemporalUIURL != "" {
		ns := s.Namespace
		if ns == "" {
			ns = "default"
		}
		v.Links["temporalUI"] = fmt.Sprintf("%s/namespaces/%s/workflows/%s", s.TemporalUIURL, url.PathEscape(ns), url.PathEscape(r.WorkflowID))
	}
	return v
}

func (s *Server) createTrainingRun(c *gin.Context) {
	var req TrainingRunRequest
	if err := decodeJSON(c, &req); err != nil {
		s.writeErr(c, err)
		return
	}
	if req.ID == "" {
		req.ID = "t" + newCampaignID()[1:]
	} else if !campaignIDPattern.MatchString(req.ID) {
		s.writeErr(c, fieldErr("id", "must match "+campaignIDPattern.String()))
		return
	}
	spec, err := req.Spec.Normalize()
	if err != nil {
		var fe *diloco.FieldError
		if errors.As(err, &fe) {
			s.writeErr(c, fieldErr(fe.Field, fe.Message))
			return
		}
		s.writeErr(c, fieldErr("spec", err.Error()))
		return
	}
	in := workflows.TrainingRunInput{RunID: req.ID, Spec: spec, Archive: s.Archive != nil}
	ctx := c.Request.Context()
	if spec.Remote {
		live, err := s.Store.LiveNodes(ctx, nodeLiveness)
		if err != nil {
			s.writeErr(c, err)
			return
		}
		if len(live) == 0 {
			s.writeErr(c, fieldErr("remote", "no live P2P node on this site to announce rounds and collect remote deltas (start one with hyperspace node)"))
			return
		}
		in.NodeQueue = live[0].TaskQueue
	}
	specJSON, _ := json.Marshal(spec)
	wfID := workflows.TrainingWorkflowID(req.ID)
	err = s.Store.CreateTrainingRun(ctx, store.TrainingRun{ID: req.ID, Spec: specJSON, WorkflowID: wfID},
		store.Campaign{ID: req.ID, Domain: "ml", Agents: 1, Experiments: 1, BaselineSeeds: 0, Request: specJSON, WorkflowID: wfID})
	if errors.Is(err, store.ErrExists) {
		s.writeErr(c, newErr(http.StatusConflict, CodeConflict, "a campaign or training run "+req.ID+" already exists"))
		return
	}
	if err != nil {
		s.writeErr(c, err)
		return
	}
	if _, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: wfID, TaskQueue: workflows.TaskQueue}, workflows.TrainingRunWorkflow, in); err != nil {
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &already) {
			s.writeErr(c, newErr(http.StatusConflict, CodeConflict, "training run "+req.ID+" is already running"))
			return
		}
		_ = s.Store.SetTrainingStatus(ctx, req.ID, store.StatusFailed, nil, "", "start workflow: "+err.Error())
		s.writeErr(c, newErr(http.StatusServiceUnavailable, CodeUnavailable, "could not start the training workflow (is Temporal up?): "+err.Error()))
		return
	}
	row, err := s.Store.GetTrainingRun(ctx, req.ID)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	c.JSON(http.StatusCreated, s.trainingView(row))
}

func (s *Server) listTrainingRuns(c *gin.Context) {
	limit, _, err := pageParams(c, 50, 500)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	rows, err := s.Store.ListTrainingRuns(c.Request.Context(), limit)
	if err != nil {
		s.writeErr(c, storeErr(err))
		return
	}
	out := make([]TrainingRunView, 0, len(rows))
	for _, r := range rows {
		out = append(out, s.trainingView(r))
	}
	c.JSON(http.StatusOK, gin.H{"trainingRuns": out})
}

func (s *Server) getTrainingRun(c *gin.Context) {
	ctx := c.Request.Context()
	row, err := s.Store.GetTrainingRun(ctx, c.Param("id"))
	if err != nil {
		s.writeErr(c, storeErr(err))
		return
	}
	v := s.trainingView(row)
	if s.Temporal != nil && (row.Status == store.StatusRunning || row.Status == store.StatusPending) {
		qctx, cancel := contextWithTimeout(c, 5*time.Second)
		if val, err := s.Temporal.QueryWorkflow(qctx, row.WorkflowID, "", workflows.QueryTraining); err == nil {
			var p workflows.TrainingProgress
			if val.Get(&p) == nil {
				v.Live = &p
			}
		}
		cancel()
	}
	if c.Query("rounds") == "true" {
		if v.Rounds, err = s.Store.TrainingRounds(ctx, row.ID); err != nil {
			s.writeErr(c, err)
			return
		}
	}
	c.JSON(http.StatusOK, v)
}

func (s *Server) stopTrainingRun(c *gin.Context) {
	ctx := c.Request.Context()
	row, err := s.Store.GetTrainingRun(ctx, c.Param("id"))
	if err != nil {
		s.writeErr(c, storeErr(err))
		return
	}
	switch row.Status {
	case store.StatusCompleted, store.StatusStopped, store.StatusFailed:
		s.writeErr(c, newErr(http.StatusConflict, CodeConflict, "training run "+row.ID+" has already ended ("+row.Status+")"))
		return
	}
	if err := s.Temporal.SignalWorkflow(ctx, row.WorkflowID, "", workflows.SignalStop, nil); err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			s.writeErr(c, newErr(http.StatusConflict, CodeConflict, "training run "+row.ID+" is not running"))
			return
		}
		s.writeErr(c, newErr(http.StatusServiceUnavailable, CodeUnavailable, "signal stop: "+err.Error()))
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"id": row.ID, "status": "stopping",
		"message": "the current round closes, then the run signs its result with status stopped"})
}

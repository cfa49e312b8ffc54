package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"

	"github.com/gin-gonic/gin"

	"github.com/hyperspace-ai/hyperspace/internal/store"
)

// ModelLoader loads a published model into the serving process. Check
// parses the checkpoint (so a publish that would not serve is refused);
// Serve starts serving m now (other processes of the site pick it up from
// the database on their next sync).
type ModelLoader interface {
	Check(ckpt []byte) error
	Serve(ctx context.Context, m store.Model, ckpt []byte) error
	Unserve(name string)
}

// PublishModelRequest is the body of POST /api/v1/models.
type PublishModelRequest struct {
	// Source is an ML experiment id or a training run id (its result).
	Source string `json:"source"`
	// Name is the model name clients send as "model".
	Name string `json:"name"`
}

// modelNamePattern: the names OpenAI clients send, URL- and log-safe.
var modelNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)

func (s *Server) modelRoutes(v1 *gin.RouterGroup) {
	v1.POST("/models", s.publishModel)
	v1.GET("/models", s.listModels)
	v1.GET("/models/:name", s.getModel)
	v1.DELETE("/models/:name", s.deleteModel)
}

func (s *Server) publishModel(c *gin.Context) {
	var req PublishModelRequest
	if err := decodeJSON(c, &req); err != nil {
		s.writeErr(c, err)
		return
	}
	if !modelNamePattern.MatchString(req.Name) {
		s.writeErr(c, fieldErr("name", "must match "+modelNamePattern.String()))
		return
	}
	if req.Source == "" {
		s.writeErr(c, fieldErr("source", "required: an ML experiment id or a training run id"))
		return
	}
	if s.Blob == nil {
		s.writeErr(c, newErr(http.StatusServiceUnavailable, CodeUnavailable, "this process has no S3 store to read checkpoints from"))
		return
	}
	ctx := c.Request.Context()
	e, err := s.Store.GetExperiment(ctx, req.Source)
	if errors.Is(err, store.ErrNotFound) {
		run, rerr := s.Store.GetTrainingRun(ctx, req.Source)
		switch {
		case errors.Is(rerr, store.ErrNotFound):
			s.writeErr(c, fieldErr("source", "no experiment or training run "+req.Source))
			return
		case rerr != nil:
			s.writeErr(c, rerr)
			return
		case run.ResultID == "":
			s.writeErr(c, fieldErr("source", "training run "+run.ID+" has no result yet (status "+run.Status+")"))
			return
		}
		e, err = s.Store.GetExperiment(ctx, run.ResultID)
	}
	if err != nil {
		s.writeErr(c, storeErr(err))
		return
	}
	if e.Domain != "ml" {
		s.writeErr(c, fieldErr("source", "experiment "+e.ID+" is in domain "+e.Domain+"; only ML-domain checkpoints are models"))
		return
	}
	key, ok := e.Artifacts["checkpoint.bin"]
	if !ok {
		s.writeErr(c, fieldErr("source", "experiment "+e.ID+" kept no checkpoint (status "+e.Status+")"))
		return
	}
	ckpt, err := s.Blob.Get(ctx, key)
	if err != nil {
		s.writeErr(c, newErr(http.StatusServiceUnavailable, CodeUnavailable, "read checkpoint: "+err.Error()))
		return
	}
	if s.Models != nil {
		if err := s.Models.Check(ckpt); err != nil {
			s.writeErr(c, fieldErr("source", "the checkpoint of "+e.ID+" does not load: "+err.Error()))
			return
		}
	}
	sum := sha256.Sum256(ckpt)
	var cfg []byte
	if rec := e.Record; len(rec) > 0 {
		cfg = configOf(rec)
	}
	by := ""
	if t, ok := TokenOf(c); ok {
		by = t.Name
	}
	m := store.Model{Name: req.Name, Kind: "chat", ExperimentID: e.ID, CheckpointKey: key, CheckpointHash: hex.EncodeToString(sum[:]),
		Metric: e.Metric, Config: cfg, PublishedBy: by}
	created, err := s.Store.PublishModel(ctx, m)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	m, err = s.Store.GetModel(ctx, req.Name)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	if s.Models != nil {
		if err := s.Models.Serve(ctx, m, ckpt); err != nil {
			s.log().Error("serve published model", "model", m.Name, "err", err)
		}
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.JSON(status, m)
}

// configOf extracts the receipt's config from an experiment record.
func configOf(rec []byte) []byte {
	var r struct {
		Receipt struct {
			Config map[string]any `json:"config"`
		} `json:"receipt"`
	}
	if err := json.Unmarshal(rec, &r); err != nil || r.Receipt.Config == nil {
		return []byte("{}")
	}
	b, _ := json.Marshal(r.Receipt.Config)
	return b
}

func (s *Server) listModels(c *gin.Context) {
	ms, err := s.Store.ListModels(c.Request.Context())
	if err != nil {
		s.writeErr(c, err)
		return
	}
	if ms == nil {
		ms = []store.Model{}
	}
	c.JSON(http.StatusOK, gin.H{"models": ms})
}

func (s *Server) getModel(c *gin.Context) {
	m, err := s.Store.GetModel(c.Request.Context(), c.Param("name"))
	if err != nil {
		s.writeErr(c, storeErr(err))
		return
	}
	c.JSON(http.StatusOK, m)
}

func (s *Server) deleteModel(c *gin.Context) {
	if err := s.Store.DeleteModel(c.Request.Context(), c.Param("name")); err != nil {
		s.writeErr(c, storeErr(err))
		return
	}
	if s.Models != nil {
		s.Models.Unserve(c.Param("name"))
	}
	c.Status(http.StatusNoContent)
}

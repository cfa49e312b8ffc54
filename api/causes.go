package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/causes"
	"github.com/hyperspace-ai/hyperspace/internal/store"
)

func (s *Server) causeRoutes(v1 *gin.RouterGroup) {
	v1.POST("/causes", s.createCause)
	v1.GET("/causes", s.listCauses)
}

// resolveDomain finds a built-in domain or a cause any process of the site registered.
func (s *Server) resolveDomain(c *gin.Context, name string) (domains.Domain, bool, error) {
	return causes.Resolve(c.Request.Context(), s.Domains, s.Store, name, func(err error) bool { return errors.Is(err, store.ErrNotFound) })
}

// createCause registers a user-defined domain from a YAML or JSON definition.
// The evaluator is a command run on the experiments workers: only trusted
// users should reach this endpoint.
func (s *Server) createCause(c *gin.Context) {
	ct := c.GetHeader("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	switch mt {
	case "application/json", "application/yaml", "application/x-yaml", "text/yaml":
	default:
		s.writeErr(c, newErr(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
			fmt.Sprintf("Content-Type must be application/json or application/yaml, got %q", ct)))
		return
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		s.writeErr(c, jsonErr(err))
		return
	}
	cause, err := causes.Parse(body)
	if err != nil {
		var de *causes.DefinitionError
		if errors.As(err, &de) {
			s.writeErr(c, fieldErr(de.Field, de.Message+allProblems(err)))
			return
		}
		s.writeErr(c, newErr(http.StatusUnprocessableEntity, CodeInvalidField, "invalid cause definition: "+err.Error()))
		return
	}
	if _, ok := s.Domains.Get(cause.Name()); ok {
		s.writeErr(c, newErr(http.StatusConflict, CodeConflict, "a domain named "+cause.Name()+" already exists"))
		return
	}
	def, err := cause.MarshalJSON()
	if err != nil {
		s.writeErr(c, err)
		return
	}
	if err := s.Store.InsertCause(c.Request.Context(), cause.Name(), def); err != nil {
		if errors.Is(err, store.ErrExists) {
			s.writeErr(c, newErr(http.StatusConflict, CodeConflict, "a cause named "+cause.Name()+" already exists"))
			return
		}
		s.writeErr(c, err)
		return
	}
	s.Domains.Register(cause.Domain())
	c.JSON(http.StatusCreated, domainView(cause))
}

// allProblems lists the other problems of a joined definition error, if any.
func allProblems(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "\n"); i >= 0 {
		return " (and: " + strings.ReplaceAll(msg[i+1:], "\n", "; ") + ")"
	}
	return ""
}

func (s *Server) listCauses(c *gin.Context) {
	defs, err := s.Store.ListCauses(c.Request.Context())
	if err != nil {
		s.writeErr(c, err)
		return
	}
	out := []DomainView{}
	for name := range defs {
		if d, ok, err := s.resolveDomain(c, name); err == nil && ok {
			out = append(out, domainView(d))
		}
	}
	c.JSON(http.StatusOK, gin.H{"causes": out})
}

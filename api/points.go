package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/store"
)

func (s *Server) pointsRoutes(v1 *gin.RouterGroup) {
	v1.GET("/points", s.listPoints)
	v1.GET("/points/:peerId", s.getPoints)
	v1.GET("/pulse/rounds", s.listPulseRounds)
	v1.GET("/challenges", s.listChallenges)
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

func (s *Server) listPoints(c *gin.Context) {
	limit, err := intQuery(c, "limit", 100, 1, 1000)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	bs, err := s.Store.Balances(c.Request.Context(), int(limit))
	if err != nil {
		s.writeErr(c, err)
		return
	}
	if bs == nil {
		bs = []store.Balance{}
	}
	c.JSON(http.StatusOK, gin.H{"balances": bs})
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
	limit, err := intQuery(c, "limit", 50, 1, 500)
	if err != nil {
		s.writeErr(c, err)
		return
	}
	cs, err := s.Store.ListChallenges(c.Request.Context(), int(limit))
	if err != nil {
		s.writeErr(c, err)
		return
	}
	if cs == nil {
		cs = []store.Challenge{}
	}
	c.JSON(http.StatusOK, gin.H{"challenges": cs})
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

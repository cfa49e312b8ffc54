package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/hyperspace-ai/hyperspace/domains/finance"
	"github.com/hyperspace-ai/hyperspace/internal/store"
)

// PriceDatasetsPath is where users register their own price histories.
const PriceDatasetsPath = "/api/v1/finance/datasets"

// maxPriceBody bounds a price data set upload (the other routes keep maxBody).
const maxPriceBody = finance.MaxPriceBytes + 1

func (s *Server) financeRoutes(v1 *gin.RouterGroup) {
	v1.POST("/finance/datasets", s.createPriceDataset)
	v1.GET("/finance/datasets", s.listPriceDatasets)
}

// PriceDatasetView describes a registered price data set (its domain).
type PriceDatasetView struct {
	Name      string   `json:"name"` // the domain to start campaigns in
	Symbols   []string `json:"symbols"`
	Days      int      `json:"days"`
	From      string   `json:"from"`
	To        string   `json:"to"`
	ValStart  string   `json:"valStart"`
	TestStart string   `json:"testStart"`
	Benchmark string   `json:"benchmark"`
	SHA256    string   `json:"sha256"`
}

func priceDatasetView(d *finance.Domain) PriceDatasetView {
	info := d.DatasetInfo()
	def := d.Definition()
	return PriceDatasetView{Name: d.Name(), Symbols: info.Symbols, Days: info.Days, From: info.From, To: info.To,
		ValStart: def.ValStart, TestStart: def.TestStart, Benchmark: info.Benchmark, SHA256: def.SHA256}
}

// createPriceDataset registers a CSV of daily closes (date plus one or more
// columns) as a new finance domain named by ?name=, split by ?valStart= and
// ?testStart= (months, YYYY-MM) or ?valFraction= and ?testFraction=.
func (s *Server) createPriceDataset(c *gin.Context) {
	ct := c.GetHeader("Content-Type")
	if mt, _, _ := mime.ParseMediaType(ct); mt != "text/csv" {
		s.writeErr(c, newErr(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
			fmt.Sprintf("Content-Type must be text/csv (a header \"date,<symbol>,...\" and one row per trading day), got %q", ct)))
		return
	}
	name := c.Query("name")
	if name == "" {
		s.writeErr(c, fieldErr("name", "give the data set's domain name as ?name="))
		return
	}
	var sp finance.SplitSpec
	sp.ValStart, sp.TestStart = c.Query("valStart"), c.Query("testStart")
	for field, dst := range map[string]*float64{"valFraction": &sp.ValFraction, "testFraction": &sp.TestFraction} {
		if v := c.Query(field); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				s.writeErr(c, fieldErr(field, fmt.Sprintf("%q is not a number", v)))
				return
			}
			*dst = f
		}
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		s.writeErr(c, jsonErr(err))
		return
	}
	d, err := finance.NewPriceDomain(name, body, sp)
	if err != nil {
		var pe *finance.PriceError
		var se *finance.SplitError
		switch {
		case errors.As(err, &pe):
			field := "body"
			if pe.Row > 0 {
				field = "body:row " + strconv.Itoa(pe.Row)
			}
			s.writeErr(c, fieldErr(field, err.Error()))
		case errors.As(err, &se):
			s.writeErr(c, fieldErr(se.Field, se.Message))
		default:
			s.writeErr(c, newErr(http.StatusUnprocessableEntity, CodeInvalidField, err.Error()))
		}
		return
	}
	if _, ok, err := s.resolveDomain(c, name); err != nil {
		s.writeErr(c, err)
		return
	} else if ok {
		s.writeErr(c, newErr(http.StatusConflict, CodeConflict, "a domain named "+name+" already exists"))
		return
	}
	def, err := json.Marshal(d.Definition())
	if err != nil {
		s.writeErr(c, err)
		return
	}
	if err := s.Store.InsertCause(c.Request.Context(), name, def); err != nil {
		if errors.Is(err, store.ErrExists) {
			s.writeErr(c, newErr(http.StatusConflict, CodeConflict, "a domain named "+name+" already exists"))
			return
		}
		s.writeErr(c, err)
		return
	}
	s.Domains.Register(d)
	c.JSON(http.StatusCreated, gin.H{"dataset": priceDatasetView(d), "domain": domainView(d)})
}

func (s *Server) listPriceDatasets(c *gin.Context) {
	defs, err := s.Store.ListCauses(c.Request.Context())
	if err != nil {
		s.writeErr(c, err)
		return
	}
	out := []PriceDatasetView{}
	for name, def := range defs {
		if !finance.IsPriceDefinition(def) {
			continue
		}
		if d, ok, err := s.resolveDomain(c, name); err == nil && ok {
			if fd, ok := d.(*finance.Domain); ok && fd.Definition() != nil {
				out = append(out, priceDatasetView(fd))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	c.JSON(http.StatusOK, gin.H{"datasets": out})
}

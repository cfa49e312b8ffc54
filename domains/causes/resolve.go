package causes

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/finance"
)

// Loader loads a stored cause definition by name (the site database);
// an error wrapping a not-found sentinel means "no such cause".
type Loader interface {
	GetCause(ctx context.Context, name string) (json.RawMessage, error)
}

// Resolve returns the named domain: a registered one, or a cause (or a
// registered price data set, see finance.LoadPriceDomain) loaded through l,
// parsed, checked and registered so the next lookup is local.
// ok is false when no such domain or cause exists.
func Resolve(ctx context.Context, reg *domains.Registry, l Loader, name string, notFound func(error) bool) (domains.Domain, bool, error) {
	if d, ok := reg.Get(name); ok {
		return d, true, nil
	}
	if l == nil {
		return nil, false, nil
	}
	def, err := l.GetCause(ctx, name)
	if err != nil {
		if notFound != nil && notFound(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	var d domains.Domain
	if finance.IsPriceDefinition(def) {
		// A registered price data set: a finance domain over it.
		fd, err := finance.LoadPriceDomain(def)
		if err != nil {
			return nil, false, fmt.Errorf("stored price data set %s is invalid: %w", name, err)
		}
		d = fd
	} else {
		c, err := Parse(def)
		if err != nil {
			return nil, false, fmt.Errorf("stored cause %s is invalid: %w", name, err)
		}
		d = c.Domain()
	}
	reg.Register(d)
	return d, true, nil
}

// Domain is the cause as a registry entry: a domains.CodeDomain when its
// evaluator names a CodeFile (an LLM may then submit that file's source),
// the plain cause otherwise.
func (c *Cause) Domain() domains.Domain {
	if c.def.Evaluator.CodeFile != "" {
		return codeCause{c}
	}
	return c
}

// codeCause is a cause whose CodeFile an LLM may rewrite.
type codeCause struct{ *Cause }

var _ domains.CodeDomain = codeCause{}

// CodeSpec implements domains.CodeDomain.
func (c codeCause) CodeSpec(domains.Config) string {
	return fmt.Sprintf("Write the complete content of %s, which the evaluator command %q runs in a fresh working directory "+
		"holding config.json (the config, seed and split); it must keep printing the metric line the evaluator expects. "+
		"Put the whole file in the \"code\" field.", c.def.Evaluator.CodeFile, strings.Join(c.def.Evaluator.Command, " "))
}

// EvaluateCode implements domains.CodeDomain: code replaces CodeFile for this evaluation.
func (c codeCause) EvaluateCode(ctx context.Context, cfg domains.Config, code []byte, seed int64, opts domains.EvalOptions) (domains.Result, error) {
	cc := *c.Cause
	cc.def.Evaluator.Files = cloneMap(c.def.Evaluator.Files)
	if cc.def.Evaluator.Files == nil {
		cc.def.Evaluator.Files = map[string]string{}
	}
	cc.def.Evaluator.Files[c.def.Evaluator.CodeFile] = string(code)
	res, err := cc.Evaluate(ctx, cfg, seed, opts)
	if err == nil {
		res.Artifacts[path.Base(c.def.Evaluator.CodeFile)] = code
	}
	return res, err
}

package causes

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// Loader loads a stored cause definition by name (the site database);
// an error wrapping a not-found sentinel means "no such cause".
type Loader interface {
	GetCause(ctx context.Context, name string) (json.RawMessage, error)
}

// Resolve returns the named domain: a registered one, or a cause loaded
// through l, parsed, checked and registered so the next lookup is local.
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
	c, err := Parse(def)
	if err != nil {
		return nil, false, fmt.Errorf("stored cause %s is invalid: %w", name, err)
	}
	reg.Register(c)
	return c, true, nil
}

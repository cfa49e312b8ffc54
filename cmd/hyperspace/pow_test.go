package main

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/pow"
	"github.com/hyperspace-ai/hyperspace/node"
	"github.com/hyperspace-ai/hyperspace/p2p"
)

func TestPoWFlags(t *testing.T) {
	for _, c := range []struct {
		flags         powFlags
		static, dynam int
	}{
		{powFlags{Difficulty: p2p.DefaultPoWDifficulty}, p2p.DefaultPoWDifficulty, 0},
		{powFlags{Difficulty: 0, Dynamic: 16}, p2p.PoWOff, 16},
		{powFlags{Difficulty: 20}, 20, 0},
	} {
		var o node.Options
		if err := c.flags.apply(&o); err != nil {
			t.Fatal(err)
		}
		if o.PoWDifficulty != c.static || o.PoWDynamic != c.dynam {
			t.Errorf("%+v: options %d/%d, want %d/%d", c.flags, o.PoWDifficulty, o.PoWDynamic, c.static, c.dynam)
		}
	}
	for _, bad := range []powFlags{{Difficulty: 33}, {Difficulty: -1}, {Difficulty: 12, Dynamic: 40}} {
		var o node.Options
		if err := bad.apply(&o); !errors.Is(err, pow.ErrDifficulty) {
			t.Errorf("%+v: %v, want ErrDifficulty", bad, err)
		}
	}
	for _, cmd := range []string{"node", "dev"} {
		c := nodeCmd()
		if cmd == "dev" {
			c = devCmd()
		}
		f := c.Flags().Lookup("pow-difficulty")
		if f == nil || f.DefValue != strconv.Itoa(p2p.DefaultPoWDifficulty) || !strings.Contains(f.Usage, "peers of a site with a lower one are refused") {
			t.Errorf("%s --pow-difficulty: %+v", cmd, f)
		}
		if c.Flags().Lookup("pow-dynamic") == nil {
			t.Errorf("%s has no --pow-dynamic", cmd)
		}
	}
}

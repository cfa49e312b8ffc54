//go:build linux

package partition_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/node"
	"github.com/hyperspace-ai/hyperspace/p2p"
)

// helperEnv, when set, turns the test binary into a helper process that
// runs one side's nodes; its value is the JSON helperConfig.
const helperEnv = "HS_PARTITION_HELPER"

// domain is the research domain the findings belong to.
const domain = "search"

// campaignPrefix + side is the Campaign of every finding a side publishes,
// which tells the sides' records apart.
const campaignPrefix = "partition-"

// helperConfig is what a helper process is told.
type helperConfig struct {
	Side         string        // "a" or "b"
	Nodes        []nodeConfig  // the nodes to run, in order
	SyncInterval time.Duration // p2p.Config.SyncInterval
	LAN          string        // CIDR exempt from the IP colocation penalty
}

type nodeConfig struct {
	Dir       string // holds node.key (written by the test) and replica/
	Listen    string // TCP multiaddr on the namespace's veth address
	Bootstrap []string
}

// reply is one JSON line a helper writes for each command.
type reply struct {
	OK            bool        `json:"ok"`
	Error         string      `json:"error,omitempty"`
	Published     int         `json:"published,omitempty"`     // stop: findings published since the helper started
	PublishErrors int         `json:"publishErrors,omitempty"` // stop: Share calls that failed
	LastError     string      `json:"lastError,omitempty"`
	Nodes         []nodeState `json:"nodes,omitempty"` // state
}

// nodeState is one node's replica and connectivity.
type nodeState struct {
	ID        string         `json:"id"`
	Hash      string         `json:"hash"`   // crdt.Replica.StateHash over all domains
	Count     int            `json:"count"`  // records held
	BySide    map[string]int `json:"bySide"` // records held, by publishing side
	Peers     int            `json:"peers"`
	Delivered uint64         `json:"delivered"` // p2p.Stats.Delivered: records learnt by gossip
	SyncAdded uint64         `json:"syncAdded"` // p2p.Stats.SyncAdded: records learnt by sync
	Redialed  uint64         `json:"redialed"`  // p2p.Stats.Redialed: lost peers reconnected by the redialer
	Redialing int            `json:"redialing"` // lost peers being redialled now
}

// agent publishes one node's findings.
type agent struct {
	n    *node.Node
	key  *identity.Key
	name string
	run  int // last run number
}

// helper is the state of a helper process.
type helper struct {
	cfg    helperConfig
	agents []*agent

	mu        sync.Mutex // guards the fields below
	stop      context.CancelFunc
	wg        sync.WaitGroup
	published int
	errs      int
	lastErr   error
}

// runHelper is the helper process: it starts the configured nodes and
// answers the test's commands, one per line on in, with one JSON reply per
// line on out:
//
//	start <ms>  every node publishes a signed finding every <ms> milliseconds
//	stop        stop publishing; reply with the counts
//	state       every node's state (nodeState)
//	quit        close the nodes and exit
//
// It also exits when in reaches EOF (the test died). Logs go to stderr.
func runHelper(cfgJSON string, in io.Reader, out io.Writer) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var cfg helperConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		log.Error("helper config", "err", err)
		return 2
	}
	_, lan, err := net.ParseCIDR(cfg.LAN)
	if err != nil {
		log.Error("helper config", "err", err)
		return 2
	}
	h := &helper{cfg: cfg}
	defer h.close()
	for i, nc := range cfg.Nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		n, err := node.Start(ctx, node.Options{
			Dir:         nc.Dir,
			ListenAddrs: []string{nc.Listen},
			Bootstrap:   nc.Bootstrap,
			Domains:     []string{domain},
			Logger:      log.With("side", cfg.Side, "i", i),
			P2P: func(c *p2p.Config) {
				c.SyncInterval = cfg.SyncInterval
				c.IPColocationWhitelist = []*net.IPNet{lan}
			},
		})
		cancel()
		if err != nil {
			log.Error("starting node", "i", i, "err", err)
			return 1
		}
		key, err := identity.Generate()
		if err != nil {
			n.Close()
			log.Error("agent key", "err", err)
			return 1
		}
		h.agents = append(h.agents, &agent{n: n, key: key, name: fmt.Sprintf("%s%d", cfg.Side, i)})
	}

	enc := json.NewEncoder(out)
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		var r reply
		switch cmd {
		case "start":
			ms, err := strconv.Atoi(arg)
			if err != nil || ms <= 0 {
				r.Error = fmt.Sprintf("start: bad interval %q", arg)
				break
			}
			if err := h.start(time.Duration(ms) * time.Millisecond); err != nil {
				r.Error = err.Error()
				break
			}
			r.OK = true
		case "stop":
			r = h.halt()
		case "state":
			r = reply{OK: true, Nodes: h.state()}
		case "quit":
			_ = enc.Encode(reply{OK: true})
			return 0
		default:
			r.Error = fmt.Sprintf("unknown command %q", cmd)
		}
		if err := enc.Encode(r); err != nil {
			return 1
		}
	}
	return 0
}

// start makes every node publish a finding every interval, the nodes
// staggered evenly over the interval so the side's rate is steady.
func (h *helper) start(interval time.Duration) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stop != nil {
		return fmt.Errorf("start: already publishing")
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	for i, a := range h.agents {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			select {
			case <-ctx.Done():
				return
			case <-time.After(interval * time.Duration(i) / time.Duration(len(h.agents))):
			}
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				err := h.publish(a)
				h.mu.Lock()
				if err != nil {
					h.errs++
					h.lastErr = err
				} else {
					h.published++
				}
				h.mu.Unlock()
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	return nil
}

// publish signs a's next finding (a real receipt: Ed25519-signed by the
// agent, certified by the node's key through node.Share) and publishes it.
func (h *helper) publish(a *agent) error {
	a.run++
	s, err := receipt.Sign(receipt.Receipt{
		Project:    "partition",
		RunNumber:  a.run,
		Timestamp:  time.Now().UnixMilli(),
		Hypothesis: fmt.Sprintf("run %d of agent %s", a.run, a.name),
		Config:     map[string]any{"k1": 1.2 + float64(a.run%5)/10},
		Domain:     domain,
		Campaign:   campaignPrefix + h.cfg.Side,
		Agent:      a.name,
		Seed:       int64(a.run),
		Metric:     receipt.MetricValue{Name: "ndcg", Direction: "maximize", Value: float64(a.run%100) / 100},
		Proposer:   "builtin",
	}, a.key)
	if err != nil {
		return err
	}
	// Not ctx: stopping the campaign must not abort a publication halfway
	// (the finding would be in the replica but not counted).
	pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return a.n.Share(pctx, s, a.key)
}

// halt stops publishing and reports the counts.
func (h *helper) halt() reply {
	h.mu.Lock()
	stop := h.stop
	h.stop = nil
	h.mu.Unlock()
	if stop != nil {
		stop()
		h.wg.Wait()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	r := reply{OK: true, Published: h.published, PublishErrors: h.errs}
	if h.lastErr != nil {
		r.LastError = h.lastErr.Error()
	}
	return r
}

// state reads every node's replica and counters. Records are only ever
// added, so Count is read before Hash: when Count is the full total, the
// hash covers every record.
func (h *helper) state() []nodeState {
	var out []nodeState
	for _, a := range h.agents {
		st := a.n.P2P.Stats()
		ns := nodeState{
			ID:        a.n.P2P.ID().String(),
			Count:     a.n.Replica.Len(""),
			BySide:    map[string]int{},
			Peers:     st.Peers,
			Delivered: st.Delivered,
			SyncAdded: st.SyncAdded,
			Redialed:  st.Redialed,
			Redialing: a.n.P2P.Redialing(),
		}
		ns.Hash = a.n.Replica.StateHash("")
		for _, s := range a.n.Replica.Records(domain) {
			ns.BySide[strings.TrimPrefix(s.Receipt.Campaign, campaignPrefix)]++
		}
		out = append(out, ns)
	}
	return out
}

func (h *helper) close() {
	h.halt()
	for _, a := range h.agents {
		a.n.Close()
	}
}

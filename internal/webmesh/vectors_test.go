package webmesh_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hyperspace-ai/hyperspace/internal/identity"
	"github.com/hyperspace-ai/hyperspace/internal/jcs"
	"github.com/hyperspace-ai/hyperspace/internal/pow"
	"github.com/hyperspace-ai/hyperspace/internal/receipt"
	"github.com/hyperspace-ai/hyperspace/p2p"
	"github.com/hyperspace-ai/hyperspace/p2p/p2ptest"
)

// goVerdict is what a Go node's record checks say of env published by
// publisher (the reasons of admission: receipt.Verify, then the cert).
func goVerdict(data []byte, publisher peer.ID) string {
	env, err := p2p.UnmarshalEnvelope(data)
	if err != nil {
		return p2p.ReasonMalformed
	}
	if err := env.Receipt.Verify(); err != nil {
		if errors.Is(err, receipt.ErrBadID) {
			return p2p.ReasonBadID
		}
		return p2p.ReasonBadSignature
	}
	if err := env.Cert.Verify(publisher, env.Receipt.Receipt.PublicKey); err != nil {
		return p2p.ReasonSignerMismatch
	}
	return "ok"
}

// TestBrowserMatchesGo checks the page's verification code, in Chromium,
// against Go's on the same inputs: canonical JSON (internal/jcs), message
// ids (p2p.MessageID), the static identity puzzle (internal/pow), agent
// ids (internal/identity), and the verdict on honest and forged envelopes
// (receipt.Verify and the agent cert).
func TestBrowserMatchesGo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := startNode(t, ctx, true)
	tb := openTab(t, a)
	b64 := base64.StdEncoding.EncodeToString

	// Canonical JSON.
	for _, in := range []string{
		`{"b":1,"a":[1.5e-7,1e21,123456789012345680000,-0,0.1,1e-6,1E3,100e-2,5e-324,1.7976931348623157e308]}`,
		`{"\u20ac":1,"\ud83d\ude00":2,"z":3,"\u00e9":4,"":5,"a\u0000":6}`,
		`{"s":"<tag> & \"q\" \\ \u2028 \u0007 \u001f \u007f é 😀 \t\n\r\b\f /"}`,
		`[null,true,false,{},[],"",0,-1,4.5,0.000001,0.0000001,1e20,9007199254740993]`,
	} {
		want, err := jcs.Canonicalize([]byte(in))
		if err != nil {
			t.Fatalf("jcs %s: %v", in, err)
		}
		var got string
		tb.mustEval(fmt.Sprintf(`hsMesh.verify.canonicalize(%q)`, in), &got)
		if got != string(want) {
			t.Errorf("canonical %s:\n go %s\n js %s", in, want, got)
		}
	}

	// Envelopes, honest and forged, and their message ids.
	nodeKey := a.key
	other, err := pow.MintKey(ctx, p2ptest.Difficulty)
	if err != nil {
		t.Fatal(err)
	}
	agent := p2ptest.AgentKey("vectors")
	honest, err := p2ptest.Receipt(agent, p2ptest.Domain, 7, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tricky := honest.Receipt
	tricky.Hypothesis = "<b>é 😀 \u2028 & \"quoted\"</b>"
	tricky.Config = map[string]any{"lr": 3e-7, "big": 1e21, "nested": map[string]any{"z": []any{1.0, "x", nil, true}, "\u20ac": 0.1}}
	tricky.Result.LossCurve = [][2]float64{{1, 0.5}, {2, 0.25}}
	tricky.Result.Values = map[string]float64{"ndcg@10": 0.3333333333333333}
	tricky.Kind = "training-run"
	tricky.Training = &receipt.TrainingInfo{Run: "r1", Workers: 2, Compression: "int8", OuterLR: 0.7, Contributors: []receipt.Contributor{{ID: "w1", Deltas: 3}}}
	tricky.Code = "def f(x):\n\treturn x\n"
	trickySigned, err := receipt.Sign(tricky, agent)
	if err != nil {
		t.Fatal(err)
	}
	cert := p2p.NewAgentCert(nodeKey, agent.Public())
	env := func(s receipt.Signed, c p2p.AgentCert) []byte {
		data, err := p2p.Envelope{Receipt: s, Cert: c}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	tampered := honest
	tampered.Receipt.Hypothesis += " (tampered)"
	resigned := tampered // the id matches the content, the signature does not
	canon, _ := receipt.Canonical(resigned.Receipt)
	resigned.ID = receipt.IDOf(canon)
	badCertSig := cert
	forged := p2p.NewAgentCert(other, agent.Public())
	badCertSig.Signature = forged.Signature
	otherAgent := p2ptest.AgentKey("someone else")
	cases := []struct {
		name string
		data []byte
		want string // the verdict both sides must reach
	}{
		{"honest", env(honest, cert), "ok"},
		{"tricky fields", env(trickySigned, cert), "ok"},
		{"tampered content", env(tampered, cert), p2p.ReasonBadID},
		{"signature of other content", env(resigned, cert), p2p.ReasonBadSignature},
		{"cert of another node", env(honest, p2p.NewAgentCert(other, agent.Public())), p2p.ReasonSignerMismatch},
		{"cert with a forged signature", env(honest, badCertSig), p2p.ReasonSignerMismatch},
		{"cert for another agent", env(honest, p2p.NewAgentCert(nodeKey, otherAgent.Public())), p2p.ReasonSignerMismatch},
		{"no cert", env(honest, p2p.AgentCert{}), p2p.ReasonSignerMismatch},
		{"not json", []byte(`{"receipt":`), p2p.ReasonMalformed},
	}
	topic := p2p.TopicForDomain(p2ptest.Domain)
	for _, c := range cases {
		if got := goVerdict(c.data, a.ID()); got != c.want {
			t.Errorf("%s: Go says %s, the test wants %s", c.name, got, c.want)
		}
		var got string
		tb.mustEval(fmt.Sprintf(`hsMesh.verify.verifyEnvelope(%q, %q, %q)`, b64(c.data), a.ID().String(), p2ptest.Domain), &got)
		if got != c.want {
			t.Errorf("%s: the tab says %s, Go says %s", c.name, got, c.want)
		}
	}

	// Message ids: the envelopes above, and messages that take the slow
	// path or no receipt id at all, on research and other topics.
	id := honest.ID
	ids := [][]byte{
		[]byte(`{"cert":{},"receipt":{"id":"` + id + `"}}`),
		[]byte(`{"receipt":{"id":"` + strings.ToUpper(id) + `","x":1}}`),
		[]byte(`{"receipt":{"id":"` + id[:63] + `"}}`),
		[]byte(`{"receipt":{"id":"` + id + `"`),
		[]byte(`{"receipt":{"id":"` + id + `x"}}`),
		[]byte(`[1,2,3]`),
		[]byte("\xff\xfe not utf-8"),
		{},
	}
	for _, c := range cases {
		ids = append(ids, c.data)
	}
	for _, data := range ids {
		for _, tp := range []string{topic, p2p.TopicPapers} {
			want := p2p.MessageID(tp, data)
			var got string
			tb.mustEval(fmt.Sprintf(`hsMesh.verify.msgId(%q, %q)`, tp, b64(data)), &got)
			if got != want {
				t.Errorf("message id on %s of %q: go %s, js %s", tp, data, want, got)
			}
		}
	}

	// The identity puzzle and agent ids.
	for i := range 8 {
		var k crypto.PrivKey
		if i == 0 {
			k = nodeKey
		} else if k, _, err = crypto.GenerateEd25519Key(nil); err != nil {
			t.Fatal(err)
		}
		p, err := pow.KeyBytes(k.GetPublic())
		if err != nil {
			t.Fatal(err)
		}
		var bits int
		tb.mustEval(fmt.Sprintf(`hsMesh.verify.staticBits(%q)`, b64(p)), &bits)
		if want := pow.StaticBits(p); bits != want {
			t.Errorf("static bits of %x: go %d, js %d", p, want, bits)
		}
		raw, _ := k.GetPublic().Raw()
		var aid string
		tb.mustEval(fmt.Sprintf(`hsMesh.verify.agentId(%q)`, b64(raw)), &aid)
		if want := identity.IDFromPublic(raw); aid != want {
			t.Errorf("agent id of %x: go %s, js %s", raw, want, aid)
		}
	}
}

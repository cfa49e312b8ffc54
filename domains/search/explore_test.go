package search

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
)

func TestExplore(t *testing.T) {
	spec := os.Getenv("EXPLORE")
	if spec == "" {
		t.Skip()
	}
	var cfgs []domains.Config
	if err := json.Unmarshal([]byte(spec), &cfgs); err != nil {
		t.Fatal(err)
	}
	d := New()
	for _, c := range cfgs {
		res, err := d.Evaluate(context.Background(), c, 1, domains.EvalOptions{DataDir: "../../../shared/data"})
		if err != nil {
			t.Fatal(err)
		}
		v := res.Values
		t.Logf("%v\n  val ndcg %.4f map %.4f p10 %.4f | test ndcg %.4f map %.4f p10 %.4f | train ndcg %.4f | %.3fs loss %.4f",
			c, v["valNdcg10"], v["valMap"], v["valP10"], v["testNdcg10"], v["testMap"], v["testP10"], v["trainNdcg10"], v["durationSec"], v["rerankTrainLoss"])
	}
}

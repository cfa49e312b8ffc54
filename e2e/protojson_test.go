package e2e

import (
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

func marshalHistory(h *historypb.History) ([]byte, error) {
	return protojson.MarshalOptions{Indent: "  "}.Marshal(h)
}

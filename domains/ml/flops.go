package ml

import "github.com/hyperspace-ai/hyperspace/domains"

// FlopsPerStep is the analytic floating-point operation count of one
// training step of the normalised cfg with a vocabulary of vocabSize ids
// (see flopsPerStep), so other backends report GFLOP/s on the same scale.
func FlopsPerStep(cfg domains.Config, vocabSize int) float64 {
	h := hyperFrom(cfg, vocabSize)
	return flopsPerStep(h, h.Batch)
}

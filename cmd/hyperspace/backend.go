package main

import (
	"fmt"
	"log/slog"

	"github.com/hyperspace-ai/hyperspace/activities"
	"github.com/hyperspace-ai/hyperspace/domains/ml/torchml"
)

// useBackend sets the worker's ML trainer: "go" is the pure-Go trainer
// (the default, and the bit-exact reference fraud proofs rely on); "torch"
// runs ML experiments and DiLoCo inner rounds in PyTorch (CUDA when the
// installed torch has it), same architecture, data, batches and
// evaluation, not bit-identical.
func useBackend(acts *activities.Activities, backend string, log *slog.Logger) error {
	switch backend {
	case "", "go":
		acts.Backend = "go"
		return nil
	case "torch":
		b, err := torchml.Find()
		if err != nil {
			return fmt.Errorf("--backend torch: %w (scripts/ensure-torch.sh installs Debian's python3-torch with OpenBLAS; HYPERSPACE_PYTHON names another python)", err)
		}
		acts.Backend = "torch"
		acts.InnerTrainer = b.TrainStepsWithProgress
		acts.Domains.Register(torchml.NewDomain(b))
		log.Info("ML trainer: PyTorch", "python", b.Python, "device", b.Device)
		return nil
	}
	return fmt.Errorf("--backend %q: want go or torch", backend)
}

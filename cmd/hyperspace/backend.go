package main

import (
	"errors"
	"log/slog"

	"github.com/hyperspace-ai/hyperspace/activities"
)

// useBackend sets the worker's ML trainer. "go" is the pure-Go trainer
// (the default, and the bit-exact reference).
func useBackend(acts *activities.Activities, backend string, log *slog.Logger) error {
	switch backend {
	case "", "go":
		acts.Backend = "go"
		return nil
	}
	return errors.New("--backend " + backend + ": this build has no such trainer")
}

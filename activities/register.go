package activities

import (
	"net/http"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"github.com/hyperspace-ai/hyperspace/workflows"
)

// RegisterAgentSide registers the activities that run next to the workflows
// (task queue workflows.TaskQueue).
func (a *Activities) RegisterAgentSide(w worker.Registry) {
	w.RegisterActivityWithOptions(a.Hypothesize, activity.RegisterOptions{Name: workflows.ActHypothesize})
	w.RegisterActivityWithOptions(a.RecordResult, activity.RegisterOptions{Name: workflows.ActRecordResult})
	w.RegisterActivityWithOptions(a.SetCampaignStatus, activity.RegisterOptions{Name: workflows.ActSetCampaignStatus})
	w.RegisterActivityWithOptions(a.RegisterAgent, activity.RegisterOptions{Name: workflows.ActRegisterAgent})
	w.RegisterActivityWithOptions(a.Share, activity.RegisterOptions{Name: workflows.ActShare})
}

// RegisterExperiments registers RunExperiment (task queue workflows.ExperimentsQueue).
func (a *Activities) RegisterExperiments(w worker.Registry) {
	w.RegisterActivityWithOptions(a.RunExperiment, activity.RegisterOptions{Name: workflows.ActRunExperiment})
}

func llmHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout}
}

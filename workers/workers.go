// Package workers decides which process serves which task queue and what it
// registers there:
//
//	hyperspace   CampaignWorkflow, AgentWorkflow, Hypothesize, RecordResult, bookkeeping
//	experiments  RunExperiment, InnerTrain (CPU machines; one evaluation at a time by default)
//	experiments-gpu  RunExperiment, InnerTrain on workers that declare an accelerator (--backend torch)
//	archive      ArchiveAgent, ArchiveBreakthrough, WriteSnapshot (git/GitHub)
//	node-<peer>  (node/) Hypothesize, RecordResult, Share, WritePaper, ReviewPaper
package workers

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/hyperspace-ai/hyperspace/activities"
	"github.com/hyperspace-ai/hyperspace/workflows"
)

// Options configure the workers of one process.
type Options struct {
	Client     client.Client
	Queues     []string // subset of {workflows.TaskQueue, workflows.ExperimentsQueue}
	Activities *activities.Activities
	// ExperimentSlots is how many evaluations run at once (default 1: the
	// trainers use every core).
	ExperimentSlots int
	// Identity names this worker in Temporal (shows in the UI).
	Identity string
}

// Group is a set of started workers.
type Group struct{ ws []worker.Worker }

// Start starts one worker per queue. Stop the group to drain them.
func Start(o Options) (*Group, error) {
	if len(o.Queues) == 0 {
		o.Queues = []string{workflows.TaskQueue, workflows.ExperimentsQueue}
	}
	if o.ExperimentSlots <= 0 {
		o.ExperimentSlots = 1
	}
	g := &Group{}
	for _, q := range o.Queues {
		var w worker.Worker
		switch q {
		case workflows.TaskQueue:
			w = worker.New(o.Client, q, worker.Options{Identity: o.Identity})
			RegisterWorkflows(w)
			o.Activities.RegisterAgentSide(w)
			o.Activities.RegisterTraining(w)
		case workflows.ArchiveQueue:
			if o.Activities.Archive == nil {
				g.Stop()
				return nil, fmt.Errorf("the %s queue needs an archive (set --archive-dir)", q)
			}
			// One writer per process: commits to one repository serialise anyway.
			w = worker.New(o.Client, q, worker.Options{Identity: o.Identity, MaxConcurrentActivityExecutionSize: 2})
			o.Activities.RegisterArchive(w)
		case workflows.ExperimentsQueue, workflows.GPUQueue:
			w = worker.New(o.Client, q, worker.Options{
				Identity:                           o.Identity,
				MaxConcurrentActivityExecutionSize: o.ExperimentSlots,
			})
			o.Activities.RegisterExperiments(w)
			o.Activities.RegisterInnerTrain(w)
		default:
			g.Stop()
			return nil, fmt.Errorf("unknown task queue %q (known: %s, %s, %s, %s)", q, workflows.TaskQueue, workflows.ExperimentsQueue, workflows.GPUQueue, workflows.ArchiveQueue)
		}
		if err := w.Start(); err != nil {
			g.Stop()
			return nil, fmt.Errorf("start worker on %s: %w", q, err)
		}
		g.ws = append(g.ws, w)
	}
	return g, nil
}

// RegisterWorkflows registers every workflow type.
func RegisterWorkflows(r worker.Registry) {
	r.RegisterWorkflowWithOptions(workflows.CampaignWorkflow, workflow.RegisterOptions{Name: "CampaignWorkflow"})
	r.RegisterWorkflowWithOptions(workflows.AgentWorkflow, workflow.RegisterOptions{Name: "AgentWorkflow"})
	r.RegisterWorkflowWithOptions(workflows.PeerReviewWorkflow, workflow.RegisterOptions{Name: "PeerReviewWorkflow"})
	r.RegisterWorkflowWithOptions(workflows.SnapshotWorkflow, workflow.RegisterOptions{Name: "SnapshotWorkflow"})
	r.RegisterWorkflowWithOptions(workflows.ArchiveWorkflow, workflow.RegisterOptions{Name: "ArchiveWorkflow"})
	r.RegisterWorkflowWithOptions(workflows.TrainingRunWorkflow, workflow.RegisterOptions{Name: "TrainingRunWorkflow"})
	r.RegisterWorkflowWithOptions(workflows.PulseRoundWorkflow, workflow.RegisterOptions{Name: "PulseRoundWorkflow"})
	r.RegisterWorkflowWithOptions(workflows.ChallengeWorkflow, workflow.RegisterOptions{Name: "ChallengeWorkflow"})
}

// Stop stops every worker (each waits for its running activities to yield).
func (g *Group) Stop() {
	for _, w := range g.ws {
		w.Stop()
	}
}

// ParseQueues splits a comma-separated queue list.
func ParseQueues(s string) []string {
	var out []string
	for _, q := range strings.Split(s, ",") {
		if q = strings.TrimSpace(q); q != "" {
			out = append(out, q)
		}
	}
	return out
}

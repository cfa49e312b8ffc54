package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"
)

// SignalArchive asks an agent's ArchiveWorkflow to commit its branch.
const SignalArchive = "archive"

// ArchiveRequest is the payload of SignalArchive.
type ArchiveRequest struct {
	// Final: the agent has ended; the archiver stops once this is committed.
	Final bool `json:"final,omitempty"`
}

// ArchiverInput is an ArchiveWorkflow's state (carried across ContinueAsNew).
type ArchiverInput struct {
	CampaignID string `json:"campaignId"`
	Agent      string `json:"agent"`
	Domain     string `json:"domain"`
	// Pending: a request has not been committed yet.
	Pending bool `json:"pending,omitempty"`
	// Final: the agent has ended.
	Final bool `json:"final,omitempty"`
}

const (
	// archiverIdle ends an archiver that has heard nothing for this long
	// (the agent starts a new one with its next request).
	archiverIdle = 10 * time.Minute
	// archiverRounds bounds one run's history; then it continues as new.
	archiverRounds = 100
)

// ArchiveWorkflow commits one agent's archive branch whenever the agent
// asks (SignalArchive), coalescing the requests that arrive while a commit
// runs: the archive activity rebuilds the branch from the database, so one
// commit covers every finding recorded before it. It runs beside the agent
// (an abandoned child, id ArchiverID), so the agent never waits for git or
// GitHub, and ends after the agent's final request, or when idle.
func ArchiveWorkflow(ctx workflow.Context, in ArchiverInput) error {
	log := workflow.GetLogger(ctx)
	ch := workflow.GetSignalChannel(ctx, SignalArchive)
	drain := func() {
		var req ArchiveRequest
		for ch.ReceiveAsync(&req) {
			in.Pending = true
			in.Final = in.Final || req.Final
		}
	}
	for round := 0; round < archiverRounds; round++ {
		drain()
		if !in.Pending {
			if in.Final {
				return nil
			}
			var req ArchiveRequest
			ok, _ := ch.ReceiveWithTimeout(ctx, archiverIdle, &req)
			if !ok {
				drain()
				if !in.Pending {
					return nil // idle
				}
			} else {
				in.Pending, in.Final = true, in.Final || req.Final
			}
			drain()
		}
		in.Pending = false
		actx := workflow.WithActivityOptions(ctx, archiveOptions())
		if err := workflow.ExecuteActivity(actx, ActArchiveAgent, ArchiveInput{CampaignID: in.CampaignID, Agent: in.Agent, Domain: in.Domain}).Get(ctx, nil); err != nil {
			log.Warn("archive failed", "agent", in.Agent, "error", err)
		}
	}
	drain()
	return workflow.NewContinueAsNewError(ctx, ArchiveWorkflow, in)
}

package workflows

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayRecordedHistories replays histories recorded from a real
// campaign (e2e.TestCampaignEndToEnd with HYPERSPACE_RECORD_HISTORIES=1)
// against today's workflow code: a change that breaks determinism for
// running campaigns fails here.
func TestReplayRecordedHistories(t *testing.T) {
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(CampaignWorkflow, workflow.RegisterOptions{Name: "CampaignWorkflow"})
	r.RegisterWorkflowWithOptions(AgentWorkflow, workflow.RegisterOptions{Name: "AgentWorkflow"})
	r.RegisterWorkflowWithOptions(PeerReviewWorkflow, workflow.RegisterOptions{Name: "PeerReviewWorkflow"})
	r.RegisterWorkflowWithOptions(ArchiveWorkflow, workflow.RegisterOptions{Name: "ArchiveWorkflow"})
	r.RegisterWorkflowWithOptions(TrainingRunWorkflow, workflow.RegisterOptions{Name: "TrainingRunWorkflow"})
	// training_remote.json: e2e.TestTrainingAcrossSites (a DiLoCo run with a
	// remote contributor).
	// agent_community.json, review.json and archiver.json: e2e.TestCommunity
	// (papers, peer review, archive).
	for _, f := range []string{"campaign.json", "agent.json", "campaign_nodes.json", "agent_nodes.json", "agent_community.json", "review.json", "archiver.json", "training_remote.json"} {
		t.Run(f, func(t *testing.T) {
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, filepath.Join("testdata", f)); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}

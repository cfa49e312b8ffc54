package activities

import (
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
	w.RegisterActivityWithOptions(a.WritePaper, activity.RegisterOptions{Name: workflows.ActWritePaper})
	w.RegisterActivityWithOptions(a.ReviewPaper, activity.RegisterOptions{Name: workflows.ActReviewPaper})
	w.RegisterActivityWithOptions(a.FinishReview, activity.RegisterOptions{Name: workflows.ActFinishReview})
	w.RegisterActivityWithOptions(a.AnnounceBreakthrough, activity.RegisterOptions{Name: workflows.ActAnnounceBreakthrough})
	w.RegisterActivityWithOptions(a.PickNode, activity.RegisterOptions{Name: workflows.ActPickNode})
	w.RegisterActivityWithOptions(a.LiveNodes, activity.RegisterOptions{Name: workflows.ActLiveNodes})
	w.RegisterActivityWithOptions(a.PulseOpen, activity.RegisterOptions{Name: workflows.ActPulseOpen})
	w.RegisterActivityWithOptions(a.PulseValidate, activity.RegisterOptions{Name: workflows.ActPulseValidate})
	w.RegisterActivityWithOptions(a.PulseCredit, activity.RegisterOptions{Name: workflows.ActPulseCredit})
	w.RegisterActivityWithOptions(a.ChallengeOpen, activity.RegisterOptions{Name: workflows.ActChallengeOpen})
	w.RegisterActivityWithOptions(a.ChallengeStart, activity.RegisterOptions{Name: workflows.ActChallengeStart})
	w.RegisterActivityWithOptions(a.ChallengeMove, activity.RegisterOptions{Name: workflows.ActChallengeMove})
	w.RegisterActivityWithOptions(a.ChallengeJudge, activity.RegisterOptions{Name: workflows.ActChallengeJudge})
	w.RegisterActivityWithOptions(a.ChallengeFinish, activity.RegisterOptions{Name: workflows.ActChallengeFinish})
}

// RegisterArchive registers the archive activities (task queue workflows.ArchiveQueue).
func (a *Activities) RegisterArchive(w worker.Registry) {
	w.RegisterActivityWithOptions(a.ArchiveAgent, activity.RegisterOptions{Name: workflows.ActArchiveAgent})
	w.RegisterActivityWithOptions(a.ArchiveBreakthrough, activity.RegisterOptions{Name: workflows.ActArchiveBreakthrough})
	w.RegisterActivityWithOptions(a.WriteSnapshot, activity.RegisterOptions{Name: workflows.ActWriteSnapshot})
}

// RegisterExperiments registers RunExperiment (task queue workflows.ExperimentsQueue).
func (a *Activities) RegisterExperiments(w worker.Registry) {
	w.RegisterActivityWithOptions(a.RunExperiment, activity.RegisterOptions{Name: workflows.ActRunExperiment})
}

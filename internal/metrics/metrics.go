// Package metrics defines the Prometheus collectors every Hyperspace process
// exports on /metrics (the API serves them; workers expose them with --metrics-address).
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

const ns = "hyperspace"

var (
	// ExperimentsRunning counts evaluations in progress in this process.
	ExperimentsRunning = promauto.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "experiments_running",
		Help: "Evaluations currently running in this process."})
	// ExperimentsCompleted counts evaluations that returned a result.
	ExperimentsCompleted = promauto.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "experiments_completed_total",
		Help: "Evaluations that returned a result, by domain."}, []string{"domain"})
	// ExperimentsFailed counts evaluations that returned an error.
	ExperimentsFailed = promauto.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "experiments_failed_total",
		Help: "Evaluations that failed, by domain."}, []string{"domain"})
	// ExperimentSeconds is the evaluation wall time.
	ExperimentSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "experiment_seconds",
		Help: "Evaluation wall time, by domain.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 16)}, []string{"domain"})
	// TrainingBytes counts DiLoCo bytes moved by this process's workers.
	TrainingBytes = promauto.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "training_bytes_total",
		Help: "DiLoCo bytes moved by inner-training workers: up (pseudo-gradients), down (parameters and broadcasts)."}, []string{"direction"})
	// TrainingDeltas counts pseudo-gradients by outcome.
	TrainingDeltas = promauto.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "training_deltas_total",
		Help: "DiLoCo pseudo-gradients by outcome: accepted, malformed, norm, or a remote admission reason."}, []string{"outcome"})
	// TrainingRounds counts closed DiLoCo rounds.
	TrainingRounds = promauto.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "training_rounds_total",
		Help: "DiLoCo rounds closed by an outer step."})
	// ExperimentsRecorded counts receipts stored.
	ExperimentsRecorded = promauto.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "experiments_recorded_total",
		Help: "Signed receipts stored in PostgreSQL, by domain."}, []string{"domain"})
	// NewBests counts results that beat the campaign best beyond the noise floor.
	NewBests = promauto.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "new_bests_total",
		Help: "Results that beat the campaign best by more than the noise threshold, by domain."}, []string{"domain"})
	// Proposals counts hypotheses by proposer kind (llm, builtin, fallback).
	Proposals = promauto.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "proposals_total",
		Help: "Hypotheses proposed, by domain and proposer (llm, builtin, fallback)."}, []string{"domain", "proposer"})
	// CampaignStatus counts campaign status transitions.
	CampaignStatus = promauto.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "campaign_status_total",
		Help: "Campaign status transitions recorded, by status."}, []string{"status"})
	// HTTPRequests counts API requests.
	HTTPRequests = promauto.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "http_requests_total",
		Help: "API requests, by route and status code."}, []string{"route", "code"})
	// HTTPSeconds is API latency.
	HTTPSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "http_request_seconds",
		Help: "API latency, by route.", Buckets: prometheus.DefBuckets}, []string{"route"})
	// PapersWritten counts synthesized papers, by domain and writer kind.
	PapersWritten = promauto.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "papers_written_total",
		Help: "Papers synthesized, by domain and writer (builtin, llm, fallback)."}, []string{"domain", "writer"})
	// ReviewsWritten counts peer reviews, by score.
	ReviewsWritten = promauto.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "reviews_written_total",
		Help: "Peer reviews written, by domain and score."}, []string{"domain", "score"})
	// Breakthroughs counts papers whose median review score reached 8.
	Breakthroughs = promauto.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "breakthroughs_total",
		Help: "Breakthrough papers (median review score >= 8), by domain."}, []string{"domain"})
	// ArchiveLatency is the time from a finding's receipt to its archive commit.
	ArchiveLatency = promauto.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "archive_commit_latency_seconds",
		Help:    "Seconds from a receipt's timestamp to the archive commit that holds it.",
		Buckets: []float64{0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800}})
	// ArchiveCommits counts archive commits, by target (local, remote, github).
	ArchiveCommits = promauto.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "archive_commits_total",
		Help: "Archive commits (or mirror updates), by target."}, []string{"target"})
)

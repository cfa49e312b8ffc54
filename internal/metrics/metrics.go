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
)

// Package archive publishes research results as a git archive: one branch
// per agent and domain ("agents/<peerId>/<domain>") holding every signed
// run receipt, a human summary per run, the agent's best run, a journal
// and its papers, plus a "snapshots" branch holding the network-wide
// leaderboard in the public Hyperspace snapshot format (version 2).
//
// Everything is written to a local bare repository (Repo) with git
// plumbing commands only, so it needs no working tree, and then pushed to
// any remote (a URL or a path) with Repo.Push.
//
// # Requirements
//
// The git command-line binary (git 2.28 or newer; tested with 2.39) must be
// on PATH, or named with WithGit. Every invocation runs with an isolated
// environment: no system or global configuration (GIT_CONFIG_NOSYSTEM=1,
// GIT_CONFIG_GLOBAL=/dev/null), no HOME, no terminal prompts, LC_ALL=C,
// and the fixed identity "hyperspace-archive <archive@hyperspace.invalid>".
// Extra variables (for example credentials for a push) are passed with
// WithEnv.
//
// # Idempotency and concurrency
//
// Repo.WriteBranch makes a branch's tree exactly the given files. When the
// head already has that tree it makes no commit, so re-running an export
// with the same content never adds history. Commit dates come from the
// caller, so the same inputs give the same commit ids on any machine.
// Branch heads move with a compare-and-swap (git update-ref <new> <old>)
// that is retried on conflict, so concurrent writers, in this process or
// in others, never lose a commit; writers of one branch in one process are
// also serialised by a mutex.
//
// # Files
//
// An agent branch (AgentFiles) holds:
//
//	run-NNNN.json   the signed receipt: the receipt's fields at top level
//	                as receipt.Receipt marshals them (the public run
//	                format's names), plus "id" and "signature"; ParseRun
//	                reads it back and Signed.Verify checks it
//	run-NNNN.md     a human summary of the run
//	best.json       the best run (same format as run files), if any
//	JOURNAL.md      the chronological log of runs, then the papers
//	papers/<slug>.md the agent's papers
//
// The snapshots branch (SnapshotBranch) holds SnapshotPath, built by
// BuildSnapshot; see Snapshot for the format and our additions to it.
package archive

package node

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/hyperspace-ai/hyperspace/internal/paper"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/p2p"
)

// paperMessage is what travels on the papers topic (see activities:
// WritePaper, ReviewPaper, AnnounceBreakthrough).
type paperMessage struct {
	Type   string              `json:"type"` // paper | review | breakthrough
	Paper  *paper.Signed       `json:"paper,omitempty"`
	Review *paper.SignedReview `json:"review,omitempty"`
}

// absorbPapers stores the papers and reviews the node hears over gossip in
// the site's database once their signatures check out, so a site lists the
// network's papers and their reviews, not only its own. A breakthrough
// announcement is believed only as far as the signed reviews the site holds
// go: the verdict is recomputed from them (median >= 8).
func (n *Node) absorbPapers(ctx context.Context) {
	ch, cancel := n.P2P.SubscribeRaw()
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			if m.Topic != p2p.TopicPapers {
				continue
			}
			if err := n.absorb(ctx, m.Data); err != nil && ctx.Err() == nil {
				n.log.Debug("gossiped paper not stored", "from", m.From, "error", err)
			}
		}
	}
}

// absorb handles one papers-topic message.
func (n *Node) absorb(ctx context.Context, data []byte) error {
	var msg paperMessage
	if err := json.Unmarshal(data, &msg); err != nil {
		return err
	}
	switch msg.Type {
	case "paper", "breakthrough":
		if msg.Paper == nil {
			return errors.New("no paper")
		}
		sp := *msg.Paper
		if err := sp.Verify(); err != nil {
			return err
		}
		rec, _ := json.Marshal(sp)
		p := sp.Paper
		if _, err := n.store.InsertPaper(ctx, store.Paper{ID: sp.ID, CampaignID: p.Campaign, Domain: p.Domain, Agent: p.Agent,
			Number: p.Number, PeerID: p.PeerID, Title: p.Title, Record: rec}); err != nil {
			return err
		}
		if msg.Type == "breakthrough" {
			return n.reverdict(ctx, sp.ID)
		}
	case "review":
		if msg.Review == nil {
			return errors.New("no review")
		}
		sr := *msg.Review
		if err := sr.Verify(); err != nil {
			return err
		}
		r := sr.Review
		if r.Score < 1 || r.Score > 10 {
			return errors.New("review score out of range")
		}
		rec, _ := json.Marshal(sr)
		// The paper must be known (a review of an unknown paper fails the
		// foreign key and is dropped).
		if _, err := n.store.InsertReview(ctx, store.Review{ID: sr.ID, PaperID: r.PaperID, Node: r.Node, Reviewer: r.Reviewer, Score: r.Score, Record: rec}); err != nil {
			return err
		}
	}
	return nil
}

// reverdict marks a paper still under review locally as reviewed, with the
// median of the signed reviews the site holds, when that median makes it a
// breakthrough.
func (n *Node) reverdict(ctx context.Context, id string) error {
	p, err := n.store.GetPaper(ctx, id)
	if err != nil || p.Status != store.PaperReviewing {
		return err
	}
	rows, err := n.store.ListReviews(ctx, id)
	if err != nil || len(rows) == 0 {
		return err
	}
	scores := make([]int, len(rows))
	for i, r := range rows {
		scores[i] = r.Score
	}
	m := paper.Median(scores)
	if !paper.IsBreakthrough(m) {
		return nil
	}
	return n.store.FinishReview(ctx, id, store.PaperReviewed, &m, true)
}

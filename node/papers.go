package node

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/hyperspace-ai/hyperspace/internal/paper"
	"github.com/hyperspace-ai/hyperspace/internal/store"
	"github.com/hyperspace-ai/hyperspace/p2p"
)

// absorbPapers stores the papers and reviews the node hears from other
// sites in the site's database. Every message has passed admission (the
// papers topic's validator: signature, the author's key vouched for by the
// publishing node, a review signed by the node it names, freshness, size,
// rate). What another site says never takes the place of this site's own:
// its papers are stored with origin "network" (a site paper with the same
// campaign, agent and number stays the agent's, and one the site already
// holds keeps its origin), its reviews are kept only for network papers
// (this site's papers are judged by this site's reviewers), and a
// breakthrough announcement is believed only as far as the signed reviews
// the site holds go: the verdict is recomputed from them (median >= 8).
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
			if m.Topic != p2p.TopicPapers || m.Message == nil {
				continue
			}
			if err := n.absorb(ctx, *m.Message); err != nil && ctx.Err() == nil {
				n.log.Debug("gossiped paper not stored", "from", m.From, "error", err)
			}
		}
	}
}

// absorb handles one admitted papers-topic message.
func (n *Node) absorb(ctx context.Context, msg p2p.PaperMessage) error {
	switch msg.Type {
	case p2p.PaperTypePaper, p2p.PaperTypeBreakthrough:
		sp := *msg.Paper
		rec, _ := json.Marshal(sp)
		p := sp.Paper
		if _, err := n.store.InsertPaper(ctx, store.Paper{ID: sp.ID, CampaignID: p.Campaign, Domain: p.Domain, Agent: p.Agent,
			Number: p.Number, PeerID: p.PeerID, Title: p.Title, Record: rec, Origin: store.OriginNetwork}); err != nil {
			return err
		}
		if msg.Type == p2p.PaperTypeBreakthrough {
			return n.reverdict(ctx, sp.ID)
		}
	case p2p.PaperTypeReview:
		sr := *msg.Review
		r := sr.Review
		rec, _ := json.Marshal(sr)
		// Stored only for a network paper the site holds (see InsertReview).
		if _, err := n.store.InsertReview(ctx, store.Review{ID: sr.ID, PaperID: r.PaperID, Node: r.Node, Reviewer: r.Reviewer,
			Score: r.Score, Record: rec, Origin: store.OriginNetwork}); err != nil {
			return err
		}
	default:
		return errors.New("unknown message type " + msg.Type)
	}
	return nil
}

// reverdict marks a network paper still under review locally as reviewed,
// with the median of the signed reviews the site holds, when that median
// makes it a breakthrough. This site's own papers are decided by their
// PeerReviewWorkflow only.
func (n *Node) reverdict(ctx context.Context, id string) error {
	p, err := n.store.GetPaper(ctx, id)
	if err != nil || p.Status != store.PaperReviewing || p.Origin != store.OriginNetwork {
		return err
	}
	rows, err := n.store.ListReviews(ctx, id)
	if err != nil || len(rows) == 0 {
		return err
	}
	scores := make([]int, 0, len(rows))
	for _, r := range rows {
		if r.Origin == store.OriginNetwork {
			scores = append(scores, r.Score)
		}
	}
	if len(scores) == 0 {
		return nil
	}
	m := paper.Median(scores)
	if !paper.IsBreakthrough(m) {
		return nil
	}
	return n.store.FinishReview(ctx, id, store.PaperReviewed, &m, true)
}

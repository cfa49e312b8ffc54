package main

import (
	"fmt"
	"net/http"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hyperspace-ai/hyperspace/internal/store"
)

func pointsCmd() *cobra.Command {
	var asJSON bool
	var limit int
	cmd := &cobra.Command{
		Use:   "points [PEER_ID]",
		Short: "Point balances (or one peer's ledger history) from the pulse rounds (a REST client)",
		Long: `points talks to a hyperspace API. Without an argument it lists every peer's
balance, derived from the append-only points ledger (free points and points
held as bonds); with a peer id it prints that peer's history, newest first,
each entry with its round, reason and evidence. Tokens as for hyperspace
campaign.`,
		Args: cobra.MaximumNArgs(1),
	}
	cl, _ := addAPIFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		if len(args) == 0 {
			path := fmt.Sprintf("/api/v1/points?limit=%d", limit)
			if asJSON {
				return printJSON(ctx, cl, path)
			}
			var out struct {
				Balances []store.Balance `json:"balances"`
			}
			if err := cl.do(ctx, http.MethodGet, path, nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PEER\tPOINTS\tBONDED\tENTRIES\tLAST ROUND")
			for _, b := range out.Balances {
				last := "-"
				if b.LastRound != nil {
					last = fmt.Sprint(*b.LastRound)
				}
				fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%d\t%s\n", b.PeerID, b.Points, b.Bonded, b.Entries, last)
			}
			if len(out.Balances) == 0 {
				fmt.Fprintln(tw, "(no points yet: pulse rounds credit them every --pulse-every)")
			}
			return tw.Flush()
		}
		path := fmt.Sprintf("/api/v1/points/%s?limit=%d", args[0], limit)
		if asJSON {
			return printJSON(ctx, cl, path)
		}
		var out struct {
			Balance store.Balance       `json:"balance"`
			History []store.LedgerEntry `json:"history"`
		}
		if err := cl.do(ctx, http.MethodGet, path, nil, &out); err != nil {
			return err
		}
		fmt.Printf("%s: %.2f points, %.2f bonded, %d entries\n", out.Balance.PeerID, out.Balance.Points, out.Balance.Bonded, out.Balance.Entries)
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ROUND\tREASON\tBUCKET\tAMOUNT\tKEY")
		for _, e := range out.History {
			r := "-"
			if e.Round != nil {
				r = fmt.Sprint(*e.Round)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%+.2f\t%s\n", r, e.Reason, e.Bucket, e.Amount, e.Key)
		}
		return tw.Flush()
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON")
	cmd.Flags().IntVar(&limit, "limit", 100, "rows")
	return cmd
}

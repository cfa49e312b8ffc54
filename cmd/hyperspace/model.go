package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hyperspace-ai/hyperspace/api"
	"github.com/hyperspace-ai/hyperspace/internal/store"
)

func modelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Publish, list and remove the models nodes serve through /v1 (a REST client)",
		Long: `model talks to a hyperspace API. A published model is an ML-domain checkpoint
(an experiment's, or a training run's result) under a name: every node of the
site serves it through the OpenAI-compatible API (/v1/chat/completions,
/v1/completions) with the pure-Go transformer. Publishing needs an admin token.`,
	}
	cl, _ := addAPIFlags(cmd)
	var name string
	publish := &cobra.Command{
		Use:   "publish EXPERIMENT-OR-RUN-ID --name NAME",
		Short: "Publish an experiment's or a training run's checkpoint as a named model",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if name == "" {
				return fmt.Errorf("--name is required: the model name clients will send")
			}
			var m store.Model
			if err := cl.do(cmd.Context(), http.MethodPost, "/api/v1/models", api.PublishModelRequest{Source: args[0], Name: name}, &m); err != nil {
				return err
			}
			fmt.Printf("published %s: experiment %s, checkpoint %s, val_loss %.4f\n", m.Name, m.ExperimentID, short(m.CheckpointHash), m.Metric)
			fmt.Printf("  try it: curl -H \"Authorization: Bearer $TOKEN\" %s/v1/chat/completions -d '{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"the boundary layer\"}]}'\n", cl.base, m.Name)
			return nil
		},
	}
	publish.Flags().StringVar(&name, "name", "", "model name (letters, digits, . _ : -)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the published models",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Models []store.Model `json:"models"`
			}
			if err := cl.do(cmd.Context(), http.MethodGet, "/api/v1/models", nil, &out); err != nil {
				return err
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tEXPERIMENT\tVAL_LOSS\tCHECKPOINT\tPUBLISHED")
			for _, m := range out.Models {
				fmt.Fprintf(w, "%s\t%s\t%.4f\t%s\t%s\n", m.Name, m.ExperimentID, m.Metric, short(m.CheckpointHash), m.UpdatedAt.Format("2006-01-02 15:04"))
			}
			return w.Flush()
		},
	}
	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Stop serving a published model",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cl.do(cmd.Context(), http.MethodDelete, "/api/v1/models/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Println("removed", args[0])
			return nil
		},
	}
	cmd.AddCommand(publish, list, rm)
	return cmd
}

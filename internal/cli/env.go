// Package cli holds helpers shared by the hyperspace subcommands.
package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// EnvName is the environment variable that sets a flag: HYPERSPACE_<FLAG>.
func EnvName(flag string) string {
	return "HYPERSPACE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// BindEnv documents an env var for every flag of cmd (and its persistent
// flags) and, before the command runs, sets each flag not given on the
// command line from its env var.
func BindEnv(cmd *cobra.Command) {
	annotate := func(fs *pflag.FlagSet) {
		fs.VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" {
				return
			}
			env := EnvName(f.Name)
			if !strings.Contains(f.Usage, "$"+env) {
				f.Usage += " [$" + env + "]"
			}
		})
	}
	annotate(cmd.Flags())
	annotate(cmd.PersistentFlags())
	prev := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		var err error
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if err != nil || f.Changed || f.Name == "help" {
				return
			}
			if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
				if e := c.Flags().Set(f.Name, v); e != nil {
					err = fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, e)
				}
			}
		})
		if err != nil {
			return err
		}
		if prev != nil {
			return prev(c, args)
		}
		return nil
	}
	for _, sub := range cmd.Commands() {
		BindEnv(sub)
	}
}

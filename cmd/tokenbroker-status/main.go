// Command tokenbroker-status prints one line per tokenbroker name with its
// health, from status/<name>: the operator's "what is unhealthy" view.
// It uses the usual VAULT_ADDR / VAULT_TOKEN environment.
package main

import (
	"flag"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/hashicorp/vault/api"
)

func main() {
	mount := flag.String("mount", "tokenbroker", "mount path of the tokenbroker secrets engine")
	unhealthy := flag.Bool("unhealthy", false, "show only names that are not healthy")
	flag.Parse()
	if err := run(*mount, *unhealthy); err != nil {
		fmt.Fprintln(os.Stderr, "tokenbroker-status:", err)
		os.Exit(1)
	}
}

func run(mount string, onlyUnhealthy bool) error {
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		return err
	}
	list, err := client.Logical().List(mount + "/status")
	if err != nil {
		return fmt.Errorf("list %s/status: %w", mount, err)
	}
	var names []any
	if list != nil {
		names, _ = list.Data["keys"].([]any)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tHEALTHY\tPROVIDER\tEXPIRES_AT\tLAST_GRANT\tMINTS\tREFRESHES\tFAILURES\tNEEDS_REFRESH_TOKEN\tLAST_ERROR")
	bad := 0
	for _, n := range names {
		name, _ := n.(string)
		s, err := client.Logical().Read(mount + "/status/" + name)
		if err != nil || s == nil {
			fmt.Fprintf(w, "%s\tunknown\t\t\t\t\t\t\t\t%v\n", name, err)
			bad++
			continue
		}
		d := s.Data
		healthy, _ := d["healthy"].(bool)
		if !healthy {
			bad++
		} else if onlyUnhealthy {
			continue
		}
		fmt.Fprintf(w, "%s\t%v\t%v\t%v\t%v\t%v\t%v\t%v\t%v\t%v\n", name, healthy, d["provider"], d["expires_at"],
			d["last_grant"], d["mints"], d["refreshes"], d["failures"], d["needs_refresh_token"], d["last_error"])
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Printf("%d names, %d not healthy\n", len(names), bad)
	return nil
}

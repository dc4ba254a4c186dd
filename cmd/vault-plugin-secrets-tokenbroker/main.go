// Command vault-plugin-secrets-tokenbroker serves the tokenbroker secrets engine
// to Vault as an external plugin.
package main

import (
	"os"
	"runtime/debug"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/plugin"

	tokenbroker "github.com/tokenbroker/vault-plugin-secrets-tokenbroker"
)

func main() {
	// A mount of 100 000 chains keeps about a kilobyte live for each; Go's
	// default GOGC of 100 lets the heap grow to twice the live data between
	// collections. 50 trades a little CPU for a third less memory. A GOGC in
	// the plugin's environment wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	// A soft memory limit, when TOKENBROKER_MEMORY_LIMIT asks for one
	// (memlimit.go): it caps the peak a bulk load's garbage makes.
	if limit, err := tokenbroker.ApplyMemoryLimit(os.Getenv); err != nil {
		hclog.New(&hclog.LoggerOptions{}).Warn("no soft memory limit", "error", err)
	} else if limit > 0 {
		hclog.New(&hclog.LoggerOptions{}).Info("soft memory limit set", "bytes", limit)
	}

	apiClientMeta := &api.PluginAPIClientMeta{}
	flags := apiClientMeta.FlagSet()
	if err := flags.Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
	tlsConfig := apiClientMeta.GetTLSConfig()
	tlsProviderFunc := api.VaultPluginTLSProvider(tlsConfig)

	// An orphan never acts: no provider call once Vault is gone, and the
	// process exits within a second of noticing.
	watch := &parentWatch{parent: os.Getppid(), getppid: os.Getppid, interval: 500 * time.Millisecond}
	tokenbroker.VaultAlive = watch.alive
	go watch.run(nil, func() {
		hclog.New(&hclog.LoggerOptions{}).Error("the Vault that started this plugin is gone; exiting")
		os.Exit(2)
	})

	if err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: tokenbroker.Factory,
		TLSProviderFunc:    tlsProviderFunc,
	}); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("plugin shutting down", "error", err)
	os.Exit(1)
}

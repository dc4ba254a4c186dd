//go:build e2e

package e2e

import (
	"strings"
	"testing"
)

// The API describes itself the way operators meet it: Vault's OpenAPI document
// lists our paths with tokenbroker-prefixed operation ids, and path-help reads well.
func TestSelfDescribingAPI(t *testing.T) {
	t.Parallel()
	v := StartVaultWithPlugin(t)

	spec := v.Must("read", "-format=json", "sys/internal/specs/openapi")
	for _, want := range []string{
		`"/tokenbroker/config/{name}"`, `"/tokenbroker/creds/{name}"`, `"/tokenbroker/status/{name}"`,
		`"tokenbroker-write-config"`, `"tokenbroker-read-config"`, `"tokenbroker-list-configs"`,
		`"tokenbroker-read-creds"`, `"tokenbroker-delete-creds"`, `"tokenbroker-read-status"`,
	} {
		if !strings.Contains(spec, want) {
			t.Errorf("the OpenAPI document lacks %s", want)
		}
	}

	help := v.Must("path-help", mountPath+"/config/x")
	for _, want := range []string{"client_secret", "refresh_ahead", "Write-only", "provider picks the wire dialect"} {
		if !strings.Contains(help, want) {
			t.Errorf("path-help for config lacks %q:\n%s", want, help)
		}
	}
	if help := v.Must("path-help", mountPath+"/creds/x"); !strings.Contains(help, "min_ttl") || !strings.Contains(help, "refresh_ahead") {
		t.Errorf("path-help for creds:\n%s", help)
	}
}

package tokenbroker

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// TestOpenAPI checks the self-description Vault serves at
// sys/internal/specs/openapi: every path documented, operation ids prefixed
// with tokenbroker, and every field described.
func TestOpenAPI(t *testing.T) {
	e := newEnv(t)
	e.b.System().(*logical.StaticSystemView).PluginEnvironment = &logical.PluginEnvironment{VaultVersion: "v1.21.0"}
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.HelpOperation, Storage: e.storage})
	if err != nil {
		t.Fatalf("help request: %v", err)
	}
	doc, ok := resp.Data["openapi"].(*framework.OASDocument)
	if !ok {
		t.Fatalf("no OpenAPI document: %T", resp.Data["openapi"])
	}
	raw, _ := json.Marshal(doc)
	for _, id := range []string{
		"tokenbroker-list-configs", "tokenbroker-read-config", "tokenbroker-write-config", "tokenbroker-delete-config",
		"tokenbroker-read-creds", "tokenbroker-delete-creds", "tokenbroker-read-status", "tokenbroker-list-statuses",
	} {
		if !strings.Contains(string(raw), `"operationId":"`+id+`"`) {
			t.Errorf("operation %s missing from the OpenAPI document", id)
		}
	}
	for _, p := range e.b.Paths {
		if p.HelpSynopsis == "" || p.HelpDescription == "" {
			t.Errorf("path %s lacks help", p.Pattern)
		}
		for name, f := range p.Fields {
			if f.Description == "" {
				t.Errorf("field %s of %s has no description", name, p.Pattern)
			}
		}
		for op, h := range p.Operations {
			if h.Properties().Summary == "" {
				t.Errorf("%s %s has no summary", op, p.Pattern)
			}
		}
	}
}

//go:build e2e

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// Names live in the path, so ordinary path policies gate them: a team token reads
// its own creds, is denied other teams' creds, and never sees config/.
func TestPolicies(t *testing.T) {
	t.Parallel()
	v := StartVaultWithPlugin(t)
	fake := StartFake(t, 0)
	v.WriteConfig("team-a-x", fake.ConfigArgs("oauth2")...)
	v.WriteConfig("team-b-x", fake.ConfigArgs("oauth2")...)

	policy := v.WriteFile("team-a.hcl", `path "tokenbroker/creds/team-a-*" { capabilities = ["read"] }`+"\n")
	v.Must("policy", "write", "team-a", policy)
	var created struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	out := v.Must("token", "create", "-format=json", "-policy=team-a", "-ttl=10m")
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Auth.ClientToken == "" {
		t.Fatalf("token create: %v %s", err, out)
	}
	team := created.Auth.ClientToken

	r := v.RunAs(team, "read", "-format=json", mountPath+"/creds/team-a-x")
	if r.Code != 0 {
		t.Fatalf("team-a token cannot read its own creds: %s", r)
	}
	if c := decodeCreds(t, r.Stdout); !fake.Valid(c.AccessToken) {
		t.Errorf("team-a creds: the fake does not accept the token")
	}

	calls := fake.TotalCalls()
	for _, args := range [][]string{
		{"read", mountPath + "/creds/team-b-x"},
		{"read", mountPath + "/config/team-a-x"},
		{"read", mountPath + "/config/team-b-x"},
		{"list", mountPath + "/config"},
		{"list", mountPath + "/config/"},
		{"write", mountPath + "/config/team-a-x", "provider=oauth2"},
		{"delete", mountPath + "/creds/team-a-x"},
	} {
		r := v.RunAs(team, args...)
		if r.Code == 0 || !strings.Contains(r.Stderr, "403") || !strings.Contains(r.Stderr, "permission denied") {
			t.Errorf("want 403 permission denied: %s", r)
		}
	}
	if got := fake.TotalCalls(); got != calls {
		t.Errorf("denied requests made %d upstream call(s)", got-calls)
	}
}

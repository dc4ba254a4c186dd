//go:build e2e

package e2e

import (
	"strings"
	"testing"
)

// Bad configs are rejected by the CLI with a readable reason and store nothing.
func TestBadConfig(t *testing.T) {
	t.Parallel()
	v := StartVaultWithPlugin(t)
	fake := StartFake(t, 0)
	good := "token_url=" + fake.URL() + "/oauth2/token"
	creds := []string{"client_id=" + fakeClientID, "client_secret=" + fakeClientSecret, "ca_pem=@" + fake.CAFile}

	for _, tc := range []struct {
		name   string
		path   string
		args   []string
		reason []string // all must appear in the error (case-insensitive)
	}{
		{"unknown provider", "config/bad", []string{"provider=nope", good}, []string{"provider", "nope"}},
		{"http token_url", "config/bad", []string{"provider=oauth2", "token_url=http://example.com/oauth2/token"}, []string{"https"}},
		{"missing token_url", "config/bad", []string{"provider=oauth2"}, []string{"token_url"}},
		{"bad name", "config/bad!name", []string{"provider=oauth2", good}, []string{"name"}},
		{"bad refresh_ahead", "config/bad", []string{"provider=oauth2", good, "refresh_ahead=banana"}, []string{"refresh_ahead"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := v.Run(append(append([]string{"write", mountPath + "/" + tc.path}, tc.args...), creds...)...)
			if r.Code == 0 {
				t.Fatalf("bad config accepted: %s", r)
			}
			msg := strings.ToLower(r.Stderr)
			for _, want := range append([]string{"code: 400"}, tc.reason...) {
				if !strings.Contains(msg, want) {
					t.Errorf("error does not mention %q: %s", want, r)
				}
			}
			if strings.Contains(r.Stderr, fakeClientSecret) {
				t.Errorf("error echoes the client secret: %s", r)
			}
			t.Logf("%s", strings.TrimSpace(r.Stderr))
		})
	}
	if keys := v.ListConfigs(); len(keys) != 0 {
		t.Errorf("after only bad writes, config/ lists %v; want nothing", keys)
	}
}

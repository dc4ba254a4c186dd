//go:build e2e

package e2e

// A user connects an account in a real browser: headless Chromium, a real
// OpenID provider (zitadel/oidc's example OP) and a real Vault with the
// plugin, all on loopback. Vault exchanges the code at its own unauthenticated
// callback; the provider's introspection accepts the token; the chain rotates.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
)

func TestBrowserAuthorization(t *testing.T) {
	v := StartVaultWithPlugin(t)
	callback := v.Addr + "/v1/" + mountPath + "/callback"
	// A page outside Vault for the paste-the-code flow: it shows what the
	// provider sent back, as a provider's own "copy this code" page does.
	paste := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<html><body><h1 id="title">Copy the code</h1><p id="message">paste it into Vault</p></body></html>`)
	}))
	defer paste.Close()
	op := StartOP(t, callback, paste.URL+"/pasted")
	browser := StartBrowser(t)

	// One config per team, discovered from the issuer's metadata.
	configure := func(name, redirect string) {
		v.WriteConfig(name, "issuer="+op.Issuer, "client_id="+opWebClient, "client_secret="+opClientSecret,
			"redirect_uri="+redirect, "scopes=openid,offline_access")
	}
	configure("team-a-crm", callback)
	cfg := vaultData(v, "read", mountPath+"/config/team-a-crm")
	if cfg["auth_url"] != op.Issuer+"auth" || cfg["token_url"] != op.Issuer+"oauth/token" {
		t.Fatalf("discovery filled auth_url %v and token_url %v, want the OP's", cfg["auth_url"], cfg["token_url"])
	}
	authorize := func(name string) (authURL, state string) {
		data := vaultData(v, "write", "-force", mountPath+"/authorize/"+name)
		return data["url"].(string), data["state"].(string)
	}
	creds := func(name string) string { return v.ReadCreds(name).AccessToken }

	step := sharedSteps(t, v, op, browser)
	var usedCallback, first string
	step("connect in a browser, then the chain rotates", func(t *testing.T) {
		authURL, _ := authorize("team-a-crm")
		landed, title, message := browser.SignIn(authURL)
		if !strings.HasPrefix(landed, callback+"?") || title != "team-a-crm connected" ||
			message != "team-a-crm connected to the account subject "+opUser+"; you can close this window." {
			// The scopes hold no email: the account is named by its subject (userinfo's sub).
			t.Fatalf("after signing in: page %s says %q / %q, want Vault's callback saying team-a-crm connected to the account subject %s",
				redactQuery(landed), title, message, opUser)
		}
		usedCallback = landed
		first = creds("team-a-crm")
		if !op.Active(opWebClient, first) {
			t.Fatal("the provider's introspection does not accept the connected token")
		}
		status := vaultData(v, "read", mountPath+"/status/team-a-crm")
		if status["connected_at"] == "" || status["connected_by"] == "" || status["last_grant"] != "authorization_code" {
			t.Fatalf("status = %v, want connected_at, connected_by (the root token's display name), last_grant authorization_code", status)
		}

		v.Must("delete", mountPath+"/creds/team-a-crm") // evict the access token: the next read refreshes
		second := creds("team-a-crm")
		if second == first || !op.Active(opWebClient, second) || op.Active(opWebClient, first) {
			t.Fatalf("after a refresh: new token active %v, old token active %v; want a new active token and the old one revoked by the rotation",
				op.Active(opWebClient, second), op.Active(opWebClient, first))
		}
		if g := vaultData(v, "read", mountPath+"/status/team-a-crm")["last_grant"]; g != "refresh_token" {
			t.Fatalf("last_grant = %v after the rotation, want refresh_token", g)
		}
		first = second
	})

	step("a state used twice changes nothing", func(t *testing.T) {
		title, message := browser.Open(usedCallback)
		if !strings.Contains(title, "failed") || !strings.Contains(message, "unknown, already used, or replaced") {
			t.Fatalf("the used callback again: %q / %q, want it refused", title, message)
		}
		if now := creds("team-a-crm"); now != first {
			t.Fatal("replaying a used callback changed the served token")
		}
	})

	step("an unknown state changes nothing", func(t *testing.T) {
		_, message := browser.Open(callback + "?code=made-up&state=" + strings.Repeat("A", 43) + ".team-a-crm")
		if !strings.Contains(message, "unknown, already used, or replaced") {
			t.Fatalf("unknown state: %q, want it refused", message)
		}
	})

	step("the provider's access_denied is shown escaped and changes nothing", func(t *testing.T) {
		_, state := authorize("team-a-crm")
		q := url.Values{"error": {"access_denied"}, "error_description": {"<script>alert(1)</script> said no"}, "state": {state}}
		title, message := browser.Open(callback + "?" + q.Encode())
		html := browser.HTML()
		if !strings.Contains(title, "failed") || !strings.Contains(message, "access_denied: <script>alert(1)</script> said no") ||
			strings.Contains(html, "<script>alert") {
			t.Fatalf("denied: %q / %q (html %q), want the provider's words shown as text", title, message, html)
		}
		if now := creds("team-a-crm"); now != first {
			t.Fatal("a denied reconnect changed the served token")
		}
	})

	step("of two authorizations of one name only the last works", func(t *testing.T) {
		older, _ := authorize("team-a-crm")
		newer, _ := authorize("team-a-crm")
		if _, _, message := browser.SignIn(older); !strings.Contains(message, "replaced by a newer one") {
			t.Fatalf("the older authorization: %q, want it refused", message)
		}
		if now := creds("team-a-crm"); now != first {
			t.Fatal("the refused older authorization changed the served token")
		}
		if _, title, _ := browser.SignIn(newer); title != "team-a-crm connected" {
			t.Fatalf("the newer authorization: %q, want connected", title)
		}
		if now := creds("team-a-crm"); now == first || !op.Active(opWebClient, now) {
			t.Fatal("the reconnect did not replace the chain with an active one")
		}
	})

	step("the provider verifies PKCE: a wrong verifier fails, Vault's works", func(t *testing.T) {
		configure("team-a-pasted", paste.URL+"/pasted")
		authURL, state := authorize("team-a-pasted")
		landed, _, _ := browser.SignIn(authURL)
		back, err := url.Parse(landed)
		if err != nil || back.Query().Get("code") == "" || back.Query().Get("state") != state {
			t.Fatalf("landed on %s, want the paste page with a code and our state", redactQuery(landed))
		}
		code := back.Query().Get("code")
		if status, body := op.Redeem(code, paste.URL+"/pasted", strings.Repeat("w", 43)); status == 200 || !strings.Contains(body, "invalid") {
			t.Fatalf("the OP answered a wrong verifier with %d %s, want a refusal", status, body)
		}
		v.Must("write", mountPath+"/authorize/team-a-pasted/code", "code="+code, "state="+state)
		if !op.Active(opWebClient, creds("team-a-pasted")) {
			t.Fatal("the provider does not accept the token of the pasted code")
		}
	})

	step("a team may authorize its own names only", func(t *testing.T) {
		policy := v.WriteFile("team-a.hcl", `path "tokenbroker/authorize/team-a-*" { capabilities = ["update"] }`)
		v.Must("policy", "write", "team-a", policy)
		token := v.JSON("token", "create", "-format=json", "-policy=team-a")["auth"].(map[string]any)["client_token"].(string)
		if r := v.RunAs(token, "write", "-force", mountPath+"/authorize/team-a-crm"); r.Code != 0 {
			t.Fatalf("team A authorizing its own name: %s", r)
		}
		configure("team-b-crm", callback)
		if r := v.RunAs(token, "write", "-force", mountPath+"/authorize/team-b-crm"); r.Code == 0 || !strings.Contains(r.Stderr, "permission denied") {
			t.Fatalf("team A authorizing team B's name: %s, want permission denied", r)
		}
	})

	step("nothing secret in Vault's log", func(t *testing.T) {
		log, err := os.ReadFile(v.log)
		if err != nil {
			t.Fatal(err)
		}
		back, _ := url.Parse(usedCallback)
		for _, secret := range []string{back.Query().Get("code"), back.Query().Get("state"), first, opClientSecret} {
			if secret != "" && strings.Contains(string(log), secret) {
				t.Fatalf("Vault's log holds a secret (%d characters)", len(secret))
			}
		}
	})
}

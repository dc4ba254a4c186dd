//go:build e2e

package e2e

// response_mode=form_post through a real Vault, a real browser and a real
// OpenID provider (zitadel/oidc's example OP, which answers form_post with
// an auto-submitting page): the browser POSTs code and state to Vault's
// unauthenticated callback, Vault's HTTP layer decodes the
// application/x-www-form-urlencoded body into the request's data, and the
// file audit device records them HMAC'd. A GET callback's query, by
// contrast, lands in the audit log's request_uri in clear text.

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// postedForms records the bodies of the form POSTs the browser sends to
// prefix (Chrome DevTools Protocol, Network.requestWillBeSent).
type postedForms struct {
	mu    sync.Mutex
	forms []url.Values
}

func (p *postedForms) listen(t *testing.T, b *Browser, prefix string) {
	t.Helper()
	err := chromedp.Listen(b.ctx, func(ev any) {
		e, ok := ev.(*network.EventRequestWillBeSent)
		if !ok || e.Request.Method != http.MethodPost || !strings.HasPrefix(e.Request.URL, prefix) {
			return
		}
		var body strings.Builder
		for _, entry := range e.Request.PostDataEntries {
			body.Write(entry.Bytes)
		}
		form, _ := url.ParseQuery(body.String())
		p.mu.Lock()
		defer p.mu.Unlock()
		p.forms = append(p.forms, form)
	})
	if err != nil {
		t.Fatalf("listening to the browser's requests: %v", err)
	}
}

func (p *postedForms) all() []url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]url.Values(nil), p.forms...)
}

// auditRequest is a file audit device's request entry, as far as read here.
type auditRequest struct {
	Operation  string         `json:"operation"`
	Path       string         `json:"path"`
	Data       map[string]any `json:"data"`
	RequestURI string         `json:"request_uri"`
}

// callbackAuditEntries are the request entries of update operations
// (POSTs) on the callback in a file audit log.
func callbackAuditEntries(t *testing.T, log string) []auditRequest {
	t.Helper()
	var out []auditRequest
	for _, line := range strings.Split(log, "\n") {
		var e struct {
			Type    string       `json:"type"`
			Request auditRequest `json:"request"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Type == "request" &&
			e.Request.Operation == "update" && e.Request.Path == mountPath+"/callback" {
			out = append(out, e.Request)
		}
	}
	return out
}

func TestBrowserAuthorizationFormPost(t *testing.T) {
	v := StartVaultWithPlugin(t)
	auditLog := filepath.Join(v.Dir, "audit.log")
	v.Must("audit", "enable", "file", "file_path="+auditLog)
	callback := v.Addr + "/v1/" + mountPath + "/callback"
	op := StartOP(t, callback)
	browser := StartBrowser(t)
	var posted postedForms
	posted.listen(t, browser, callback)
	readAudit := func(t *testing.T) string {
		b, err := os.ReadFile(auditLog)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	configure := func(mode string) {
		v.WriteConfig("fp", "issuer="+op.Issuer, "client_id="+opWebClient, "client_secret="+opClientSecret,
			"redirect_uri="+callback, "scopes=openid,offline_access", "response_mode="+mode)
	}
	authorize := func() (authURL, state string) {
		data := vaultData(v, "write", "-force", mountPath+"/authorize/fp")
		return data["url"].(string), data["state"].(string)
	}

	step := sharedSteps(t, v, op, browser)
	var code, state string
	step("the provider posts the code to Vault's callback, which connects the account", func(t *testing.T) {
		configure("form_post")
		if got := vaultData(v, "read", mountPath+"/config/fp")["response_mode"]; got != "form_post" {
			t.Fatalf("config response_mode = %v, want form_post", got)
		}
		authURL, issued := authorize()
		if u, _ := url.Parse(authURL); u.Query().Get("response_mode") != "form_post" {
			t.Fatalf("authorization URL %s: want response_mode=form_post", redactQuery(authURL))
		}
		landed, title, message := browser.SignIn(authURL)
		if landed != callback || title != "fp connected" || message != "fp connected to the account subject "+opUser+"; you can close this window." {
			t.Fatalf("after signing in: page %s says %q / %q, want Vault's callback, without a query, saying fp connected to the account subject %s",
				redactQuery(landed), title, message, opUser)
		}
		forms := posted.all()
		if len(forms) != 1 || forms[0].Get("state") != issued || forms[0].Get("code") == "" {
			fields := make([][]string, len(forms)) // the names only: the values are secrets
			for i, f := range forms {
				for k := range f {
					fields[i] = append(fields[i], k)
				}
			}
			t.Fatalf("the browser posted %d forms to the callback, with fields %v; want one, of our state and a code", len(forms), fields)
		}
		code, state = forms[0].Get("code"), issued
		if !op.Active(opWebClient, v.ReadCreds("fp").AccessToken) {
			t.Fatal("the provider's introspection does not accept the connected token")
		}
	})

	step("the audit log holds the posted code and state HMAC'd only", func(t *testing.T) {
		if code == "" {
			t.Skip("no form was posted")
		}
		log := readAudit(t)
		entries := callbackAuditEntries(t, log)
		if len(entries) == 0 {
			t.Fatalf("the audit log (%d bytes) has no request entry of the callback POST", len(log))
		}
		for _, e := range entries {
			loggedCode, _ := e.Data["code"].(string)
			loggedState, _ := e.Data["state"].(string)
			if !strings.HasPrefix(loggedCode, "hmac-sha256:") || !strings.HasPrefix(loggedState, "hmac-sha256:") || e.RequestURI != "" {
				t.Errorf("audit entry of the callback POST: data %v, request_uri %q; want code and state HMAC'd and no request_uri", e.Data, e.RequestURI)
			}
		}
		for what, secret := range map[string]string{"code": code, "state": state} {
			if strings.Contains(log, secret) {
				t.Errorf("the audit log holds the posted %s in clear text", what)
			}
		}
		serverLog, err := os.ReadFile(v.log)
		if err != nil {
			t.Fatal(err)
		}
		for what, secret := range map[string]string{"code": code, "state": state} {
			if strings.Contains(string(serverLog), secret) {
				t.Errorf("Vault's trace-level log holds the posted %s", what)
			}
		}
	})

	step("a used state posted again changes nothing", func(t *testing.T) {
		if code == "" {
			t.Skip("no form was posted")
		}
		before := v.ReadCreds("fp").AccessToken
		resp, err := http.PostForm(callback, url.Values{"code": {code}, "state": {state}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(string(body), "unknown, already used, or replaced") {
			t.Fatalf("POST of a used state = %d %s %q, want Vault to hand the form to the plugin and answer its 400 page",
				resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if after := v.ReadCreds("fp").AccessToken; after != before {
			t.Fatal("replaying a used form changed the served token")
		}
	})

	step("control: a GET callback's code is in the audit log's request_uri in clear text", func(t *testing.T) {
		configure("query")
		authURL, _ := authorize()
		if u, _ := url.Parse(authURL); u.Query().Has("response_mode") {
			t.Fatalf("authorization URL %s: want no response_mode for query", redactQuery(authURL))
		}
		landed, title, _ := browser.SignIn(authURL)
		back, err := url.Parse(landed)
		if err != nil || back.Query().Get("code") == "" || title != "fp connected" {
			t.Fatalf("after signing in: %s %q, want Vault's callback with a code in its query, connected", redactQuery(landed), title)
		}
		if !strings.Contains(readAudit(t), back.Query().Get("code")) {
			t.Fatal("the audit log does not hold a GET callback's code: the check above could not see one either")
		}
	})
}

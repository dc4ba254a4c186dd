//go:build e2e

package e2e

// A real OpenID provider and a real browser for the onboarding tests
// (browser_test.go, device_test.go): zitadel/oidc's example OP (an
// OpenID-certified library, with its own login and device pages) on loopback,
// and headless Chromium driven by chromedp.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// The OP's user and clients. The user's id equals its name, so tokens of
// both flows name a subject the OP's introspection finds.
const (
	opUser         = "alice"
	opPassword     = "alice-password-7d1e"
	opWebClient    = "vault-web"
	opDeviceClient = "vault-device"
	opClientSecret = "op-client-secret-4b9f"
)

// OP is a running zitadel example OpenID provider.
type OP struct {
	t      *testing.T
	Issuer string // http://127.0.0.1:port/
	srv    *http.Server
}

// StartOP starts the OP on a free loopback port. The web client (code flow,
// refresh tokens, HTTP Basic) accepts redirectURIs; the device client does
// the device flow with refresh tokens.
func StartOP(t *testing.T, redirectURIs ...string) *OP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := fmt.Sprintf("http://%s/", ln.Addr())
	users := filepath.Join(t.TempDir(), "users.json")
	data, _ := json.Marshal(map[string]map[string]any{opUser: {"ID": opUser, "Username": opUser, "Password": opPassword,
		"FirstName": "Alice", "LastName": "Tester", "Email": "alice@example.com", "EmailVerified": true}})
	if err := os.WriteFile(users, data, 0o600); err != nil {
		t.Fatal(err)
	}
	userStore, err := storage.StoreFromFile(users)
	if err != nil {
		t.Fatal(err)
	}
	clients := map[string]*storage.Client{
		opWebClient:    storage.WebClient(opWebClient, opClientSecret, redirectURIs...),
		opDeviceClient: storage.DeviceClient(opDeviceClient, opClientSecret),
	}
	store := deviceRefreshStorage{storage.NewStorageWithClients(userStore, clients)}
	o := &OP{t: t, Issuer: issuer, srv: &http.Server{Handler: exampleop.SetupServer(issuer, store, nil, false), ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = o.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = o.srv.Shutdown(ctx)
	})
	return o
}

// deviceRefreshStorage gives the example's device client the refresh grant
// too, so a device-authorized chain can rotate like a browser-authorized one.
type deviceRefreshStorage struct{ *storage.Storage }

func (s deviceRefreshStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil || id != opDeviceClient {
		return c, err
	}
	return refreshingClient{c}, nil
}

type refreshingClient struct{ op.Client }

func (c refreshingClient) GrantTypes() []oidc.GrantType {
	return append(c.Client.GrantTypes(), oidc.GrantTypeRefreshToken)
}

// Active asks the OP's introspection endpoint (RFC 7662) whether token is
// active, authenticating as client.
func (o *OP) Active(client, token string) bool {
	o.t.Helper()
	form := url.Values{"token": {token}}
	req, _ := http.NewRequest(http.MethodPost, o.Issuer+"oauth/introspect", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, opClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		o.t.Fatalf("introspection: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Active bool `json:"active"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&out) != nil {
		o.t.Fatalf("introspection answered HTTP %d", resp.StatusCode)
	}
	return out.Active
}

// Redeem posts an authorization code to the OP's token endpoint as the web
// client would, with verifier, and returns the HTTP status and body.
func (o *OP) Redeem(code, redirectURI, verifier string) (int, string) {
	o.t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}}
	req, _ := http.NewRequest(http.MethodPost, o.Issuer+"oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(opWebClient, opClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		o.t.Fatalf("token endpoint: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(body)
}

// Browser is one headless Chromium, closed at test cleanup. On a failed test
// it saves a screenshot of the page it shows last and logs where.
type Browser struct {
	t   *testing.T
	ctx context.Context
}

// chromiumPath finds Debian's chromium (installed by .ci/run when missing).
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium on PATH (apt-get install -y chromium)"
	if os.Getenv("E2E_REQUIRED") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// StartBrowser starts headless Chromium without a sandbox (a root container
// has none to give), on loopback only.
func StartBrowser(t *testing.T) *Browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.Flag("no-proxy-server", true), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	b := &Browser{t: t, ctx: ctx}
	if err := chromedp.Run(ctx); err != nil { // starts the browser
		cancelCtx()
		cancelAlloc()
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b.screenshot("failure")
		}
		cancelCtx()
		cancelAlloc()
	})
	return b
}

// Run runs actions within 60 s; on an error it saves a screenshot and fails.
func (b *Browser) Run(what string, actions ...chromedp.Action) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		b.screenshot(what)
		b.t.Fatalf("browser: %s: %v", what, err)
	}
}

// screenshot saves the current page to a directory that outlives the test.
func (b *Browser) screenshot(what string) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	var png []byte
	var where string
	if err := chromedp.Run(ctx, chromedp.Location(&where), chromedp.FullScreenshot(&png, 90)); err != nil {
		b.t.Logf("screenshot of %q failed: %v", what, err)
		return
	}
	dir, err := os.MkdirTemp("", "tokenbroker-e2e-screenshots-")
	if err == nil {
		name := filepath.Join(dir, strings.NewReplacer(" ", "-", "/", "-").Replace(what)+".png")
		if err = os.WriteFile(name, png, 0o644); err == nil {
			b.t.Logf("screenshot of %q (page %s): %s", what, redactQuery(where), name)
			return
		}
	}
	b.t.Logf("screenshot of %q not saved: %v", what, err)
}

// redactQuery drops a URL's query (codes and states) for the log.
func redactQuery(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}

// SignIn opens authURL, signs in at the OP's login page as the test user,
// and returns where the OP sent the browser back and the page's title and
// message (the callback page's #title and #message).
func (b *Browser) SignIn(authURL string) (landed, title, message string) {
	b.t.Helper()
	b.Run("sign in at the provider",
		chromedp.Navigate(authURL),
		chromedp.WaitVisible(`#username`, chromedp.ByID),
		chromedp.SendKeys(`#username`, opUser, chromedp.ByID),
		chromedp.SendKeys(`#password`, opPassword, chromedp.ByID),
		chromedp.Click(`button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#message`, chromedp.ByID),
		chromedp.Location(&landed),
		chromedp.Text(`#title`, &title, chromedp.ByID),
		chromedp.Text(`#message`, &message, chromedp.ByID),
	)
	return landed, title, message
}

// Open opens u and returns the page's #title and #message.
func (b *Browser) Open(u string) (title, message string) {
	b.t.Helper()
	b.Run("open "+redactQuery(u),
		chromedp.Navigate(u),
		chromedp.WaitVisible(`#message`, chromedp.ByID),
		chromedp.Text(`#title`, &title, chromedp.ByID),
		chromedp.Text(`#message`, &message, chromedp.ByID),
	)
	return title, message
}

// ApproveDevice opens the OP's verification URI (with the user code),
// signs in and allows the device.
func (b *Browser) ApproveDevice(verificationURIComplete string) string {
	b.t.Helper()
	var body string
	b.Run("approve the device",
		chromedp.Navigate(verificationURIComplete),
		chromedp.WaitVisible(`#username`, chromedp.ByID),
		chromedp.SendKeys(`#username`, opUser, chromedp.ByID),
		chromedp.SendKeys(`#password`, opPassword, chromedp.ByID),
		chromedp.Click(`button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`button.green`, chromedp.ByQuery),
		chromedp.Click(`button.green`, chromedp.ByQuery),
		chromedp.WaitReady(`body`, chromedp.ByQuery),
		chromedp.Sleep(200*time.Millisecond),
		chromedp.Text(`body`, &body, chromedp.ByQuery),
	)
	return body
}

// vaultData runs a vault CLI command with -format=json and returns .data.
func vaultData(v *Vault, args ...string) map[string]any {
	v.t.Helper()
	out := v.JSON(append(args[:1:1], append([]string{"-format=json"}, args[1:]...)...)...)
	data, _ := out["data"].(map[string]any)
	if data == nil {
		v.t.Fatalf("vault %s: no data in %v", strings.Join(args, " "), out)
	}
	return data
}

// chromedpOuterHTML reads the page's HTML source.
func chromedpOuterHTML(html *string) chromedp.Action {
	return chromedp.OuterHTML(`html`, html, chromedp.ByQuery)
}

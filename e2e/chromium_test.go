//go:build e2e

package e2e

// Headless Chromium (Debian's chromium) driven by chromedp, for the
// onboarding tests: a user signing in at the provider and approving.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

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
// has none to give), talking to loopback only.
func StartBrowser(t *testing.T) *Browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.Flag("no-proxy-server", true), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	b := &Browser{t: t, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil { // starts the browser; no timeout on this first call
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

// browse runs a within 60 s; on an error it saves a screenshot and fails.
func browse[T any](b *Browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.screenshot(what)
		b.t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// Do runs steps in order within 60 s.
func (b *Browser) Do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	browse(b, what, chromedp.Steps(steps...))
}

// screenshot saves the current page to a directory that outlives the test.
func (b *Browser) screenshot(what string) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	where, _ := chromedp.Run(ctx, chromedp.Location())
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
	if err != nil {
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

// page is what a page shows: where it is, and its #title and #message.
func (b *Browser) page(what string) (landed, title, message string) {
	b.t.Helper()
	b.Do(what, chromedp.WaitVisible(chromedp.ID("message")))
	landed = browse(b, what, chromedp.Location())
	title = browse(b, what, chromedp.Text(chromedp.ID("title")))
	message = browse(b, what, chromedp.Text(chromedp.ID("message")))
	return landed, title, message
}

// SignIn opens authURL, signs in at the OP's login page as the test user,
// and returns where the OP sent the browser back and that page's #title and
// #message (Vault's callback page has both).
func (b *Browser) SignIn(authURL string) (landed, title, message string) {
	b.t.Helper()
	landed, title, message, _ = b.SignInAs(authURL, opUser, opPassword)
	return landed, title, message
}

// SignInAs is SignIn as the OP's user with password; it also returns the HTTP
// status of the page the OP's redirects end on (0 when Chromium saw none).
func (b *Browser) SignInAs(authURL, user, password string) (landed, title, message string, status int) {
	b.t.Helper()
	what := "sign in at the provider as " + user
	b.Do(what, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("username")))
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx,
		chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
	)
	if err != nil {
		b.screenshot(what)
		b.t.Fatalf("browser: %s: %v", what, err)
	}
	if resp != nil {
		status = int(resp.Status)
	}
	landed, title, message = b.page("the page after signing in as " + user)
	return landed, title, message, status
}

// Open opens u and returns the page's #title and #message.
func (b *Browser) Open(u string) (title, message string) {
	b.t.Helper()
	b.Do("open "+redactQuery(u), chromedp.Navigate(u))
	_, title, message = b.page("open " + redactQuery(u))
	return title, message
}

// HTML is the current page's source.
func (b *Browser) HTML() string {
	b.t.Helper()
	return browse(b, "read the page source", chromedp.OuterHTML(chromedp.CSS("html")))
}

// ApproveDevice opens the OP's verification URI (with the user code),
// signs in and allows the device; it returns the text the OP shows then.
func (b *Browser) ApproveDevice(verificationURIComplete string) string {
	b.t.Helper()
	b.Do("approve the device",
		chromedp.Navigate(verificationURIComplete),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), opUser),
		chromedp.SendKeys(chromedp.ID("password"), opPassword),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`button.green`)),
		chromedp.Click(chromedp.CSS(`button.green`)),
		chromedp.Sleep(300*time.Millisecond),
	)
	return browse(b, "read the device page", chromedp.Text(chromedp.CSS("body")))
}

// Command fakeprovider runs the fake upstream token server (package
// fakeprovider) on its own, as the demo upstream of `make dev`.
//
//	fakeprovider -addr 127.0.0.1:8200 -tls -ca-out ca.pem -addr-out url.txt
//
// It registers one demo client (-client-id/-client-secret, accepted by the
// oauth2, oauth2_json, echo360 and endorsed dialects) and one api.video key
// (-api-key), prints the base URL and the endpoints, logs one line per token
// request to stderr (never a secret or a token), and serves until SIGINT or
// SIGTERM.
//
// For trying the user flows by hand in a browser:
//
//	-consent-page                         GET /oauth2/authorize answers a page where a person
//	                                      picks the account (email) and approves or denies
//	                                      (default off: the request is approved at once)
//	-account-email demo@example.test      the email of the account that approves by default
//	                                      (sub fake-user-1; default user1@example.test)
//
// Flags also set the fake's strictness switches (see package fakeprovider):
//
//	-echo360-encoding form|query|either   where echo360 reads its parameters (default form)
//	-oauth2-json-refresh-tokens           oauth2_json hands out refresh tokens it will not redeem
//	-refresh-token-lifetime 720h          refresh tokens expire (default never)
//	-refresh-expiry-field name            announce that lifetime: refresh_token_expires_in or
//	                                      x_refresh_token_expires_in (default none)
//	-refresh-reuse-grace 30m              a rotated refresh token works again for this long
//	-previous-token-revocation mode       whether a new access token ends earlier ones: kept (default),
//	                                      on_refresh (a refresh revokes its grant's access tokens, as
//	                                      fosite and Ory Hydra do) or on_new_token (one active token
//	                                      per client)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run serves until ctx ends and returns the exit code: 0 after a clean stop,
// 1 when the server could not start, 2 for bad flags.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fakeprovider", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		addr     = fs.String("addr", "127.0.0.1:0", "listen address")
		useTLS   = fs.Bool("tls", false, "serve HTTPS with a freshly generated CA (see -ca-out)")
		lifetime = fs.Duration("lifetime", 0, "access token lifetime (default: 1h; Endorsed 1209600s)")
		latency  = fs.Duration("latency", 0, "delay before each token response")
		clientID = fs.String("client-id", "demo-client", "demo client id")
		secret   = fs.String("client-secret", "demo-secret", "demo client secret")
		apiKey   = fs.String("api-key", "demo-api-key", "demo api.video API key")
		caOut    = fs.String("ca-out", "", "write the CA certificate (PEM) to this file (with -tls)")
		addrOut  = fs.String("addr-out", "", "write the base URL to this file once listening")
		consent  = fs.Bool("consent-page", false, "GET /oauth2/authorize answers an HTML consent page (account, Approve / Deny) instead of approving at once")
		email    = fs.String("account-email", fakeprovider.DefaultAccountEmail, "email of the account that approves by default (sub "+fakeprovider.DefaultAccountSubject+")")

		echoEnc     fakeprovider.Echo360Encoding
		expiryField fakeprovider.RefreshExpiryField
		revocation  fakeprovider.PreviousTokenRevocation
		jsonRefresh = fs.Bool("oauth2-json-refresh-tokens", false, "oauth2_json returns refresh tokens (which it never redeems)")
		rtLifetime  = fs.Duration("refresh-token-lifetime", 0, "refresh tokens expire this long after issue (default: never)")
		reuseGrace  = fs.Duration("refresh-reuse-grace", 0, "a rotated refresh token may be used again for this long (default: never)")
	)
	enumFlag(fs, "echo360-encoding", &echoEnc, "where echo360 reads its parameters",
		fakeprovider.Echo360FormOnly, fakeprovider.Echo360QueryOnly, fakeprovider.Echo360Either)
	enumFlag(fs, "refresh-expiry-field", &expiryField, "token response field announcing the refresh token lifetime",
		fakeprovider.NoRefreshExpiryField, fakeprovider.RefreshTokenExpiresIn, fakeprovider.XRefreshTokenExpiresIn)
	enumFlag(fs, "previous-token-revocation", &revocation, "whether issuing an access token revokes earlier ones",
		fakeprovider.PreviousTokensKept, fakeprovider.RevokePreviousOnRefresh, fakeprovider.RevokePreviousOnNewToken)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fakeprovider: unexpected arguments: %v\n", fs.Args())
		return 2
	}
	if *caOut != "" && !*useTLS {
		fmt.Fprintln(stderr, "fakeprovider: -ca-out needs -tls")
		return 2
	}

	logger := log.New(stderr, "", log.LstdFlags)
	srv := fakeprovider.New(fakeprovider.Options{
		TLS:         *useTLS,
		Lifetime:    *lifetime,
		Latency:     *latency,
		Addr:        *addr,
		ConsentPage: *consent,
		Logf:        logger.Printf,
	})
	srv.SetAccount(fakeprovider.DefaultAccountSubject, *email)
	srv.AddClient(*clientID, *secret)
	srv.AddAPIKey(*apiKey)
	srv.SetEcho360Encoding(echoEnc)
	srv.SetOAuth2JSONRefreshTokens(*jsonRefresh)
	srv.SetRefreshTokenLifetime(*rtLifetime, expiryField)
	srv.SetRefreshReuseGrace(*reuseGrace)
	srv.SetPreviousTokenRevocation(revocation)
	if err := srv.Start(); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer srv.Close()

	if *caOut != "" {
		if err := writeFileAtomic(*caOut, srv.CAPEM()); err != nil {
			fmt.Fprintf(stderr, "fakeprovider: writing CA: %v\n", err)
			return 1
		}
	}
	// The URL file is written last, after the CA: a script that waits for it
	// can rely on everything else being in place.
	if *addrOut != "" {
		if err := writeFileAtomic(*addrOut, srv.URL()+"\n"); err != nil {
			fmt.Fprintf(stderr, "fakeprovider: writing URL: %v\n", err)
			return 1
		}
	}

	fmt.Fprintf(stdout, "fakeprovider listening on %s\n", srv.URL())
	fmt.Fprintf(stdout, "demo client id: %s (secret and API key as given by flags; not printed)\n", *clientID)
	for _, e := range fakeprovider.Endpoints() {
		d := string(e.Dialect)
		if d == "" {
			d = "resource"
		}
		fmt.Fprintf(stdout, "  %-11s %-8s %s%s\n", d, e.Method, srv.URL(), e.Path)
	}

	<-ctx.Done()
	logger.Printf("fakeprovider: shutting down")
	srv.Close()
	return 0
}

// enumFlag defines flag name, which takes the String() of one of values
// (the first is the default) and stores it in dst.
func enumFlag[T fmt.Stringer](fs *flag.FlagSet, name string, dst *T, usage string, values ...T) {
	*dst = values[0]
	usage = fmt.Sprintf("%s: one of %v (default %v)", usage, values, values[0])
	fs.Func(name, usage, func(v string) error {
		for _, c := range values {
			if c.String() == v {
				*dst = c
				return nil
			}
		}
		return fmt.Errorf("want one of %v", values)
	})
}

// writeFileAtomic writes via a temporary file and a rename, so a reader
// polling for the file never sees it half-written.
func writeFileAtomic(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

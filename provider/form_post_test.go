package provider

// response_mode=form_post (OAuth 2.0 Form Post Response Mode): asked for in
// the authorization URL, documented per preset, read from an issuer's metadata.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
)

func TestFormPostAuthorizationURL(t *testing.T) {
	e := Endpoint{Dialect: OAuth2, ClientID: "app", RedirectURI: "https://vault.example/v1/tokenbroker/callback",
		AuthURL: "https://idp.example/authorize", AuthParams: map[string]string{"response_mode": "fragment"}}
	cases := []struct {
		name string
		mode ResponseMode
		want string // the response_mode parameter; "" means absent
	}{
		{"form_post is asked for", ResponseModeFormPost, "form_post"},
		{"query, the default for response_type=code, is not named", ResponseModeQuery, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw, err := e.AuthorizationURLIn(c.mode, "st", "ver")
			if err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(raw)
			q := u.Query()
			if got := q.Get("response_mode"); got != c.want || q.Has("response_mode") != (c.want != "") {
				t.Errorf("response_mode = %q (present %v), want %q (URL %s)", got, q.Has("response_mode"), c.want, raw)
			}
			if q.Get("state") != "st" || q.Get("code_challenge") != Challenge("ver") || q.Get("response_type") != "code" {
				t.Errorf("URL %s lost the rest of the request", raw)
			}
		})
	}
	if raw, err := e.AuthorizationURL("st", "ver"); err != nil {
		t.Fatal(err)
	} else if u, _ := url.Parse(raw); u.Query().Has("response_mode") {
		t.Errorf("AuthorizationURL = %s, want no response_mode (auth_params may not set it)", raw)
	}
	if _, err := e.AuthorizationURLIn("fragment", "st", "ver"); err == nil {
		t.Errorf("AuthorizationURLIn(fragment) succeeded, want an unknown response mode refused")
	}
	if !AuthReserved("response_mode") {
		t.Errorf("AuthReserved(response_mode) = false, want true: the authorization request sets it")
	}
}

// TestPresetsDocumentingFormPost: the presets whose providers document
// response_mode=form_post for the code flow, and only those (dialect.go cites
// the pages).
func TestPresetsDocumentingFormPost(t *testing.T) {
	want := []Dialect{Microsoft, Okta, Auth0}
	for _, d := range Dialects {
		e := Endpoint{Dialect: d}
		if got := e.DocumentsFormPost(); got != slices.Contains(want, d) {
			t.Errorf("%s: DocumentsFormPost = %v, want %v", d, got, !got)
		}
	}
}

func TestFormPostDiscoveredResponseModes(t *testing.T) {
	cases := []struct {
		name, field string
		want        []string
	}{
		{"listed", `,"response_modes_supported":["query","fragment","form_post"]`, []string{"query", "fragment", "form_post"}},
		{"left out", ``, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var base string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"issuer":"` + base + `","token_endpoint":"` + base + `/token"` + c.field + `}`))
			}))
			defer srv.Close()
			base = srv.URL
			md, err := Discover(context.Background(), srv.Client(), base)
			if err != nil || !slices.Equal(md.ResponseModes, c.want) {
				t.Fatalf("Discover: response modes %v, %v; want %v", md, err, c.want)
			}
		})
	}
}

package fakeprovider

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
)

var concreteShapes = []RefusalShape{
	RefuseInvalidGrant, RefuseInvalidRequest, RefuseInvalidToken, RefuseUnsupportedGrantType,
	RefuseErrorIn200, RefusePlainText403, RefuseProblemJSON,
}

// TestRefreshRefusalShapes: whatever shape a dialect refuses in, an unknown
// token and a reused token are refused in it, and a good token still works.
func TestRefreshRefusalShapes(t *testing.T) {
	for _, d := range refreshDialects {
		for _, shape := range append([]RefusalShape{RefuseDefault}, concreteShapes...) {
			want := shape
			if shape == RefuseDefault {
				want = defaultRefusal(d)
			}
			t.Run(fmt.Sprintf("%s/%v", d, shape), func(t *testing.T) {
				s, c := start(t, Options{})
				s.SetRefreshRefusal(d, shape)
				wantRefusal(t, refresh(t, c, s, d, "rt_unknown"), want)

				rt := mint(t, c, s, d).str(t, "refresh_token")
				wantStatus(t, refresh(t, c, s, d, rt), http.StatusOK)
				wantRefusal(t, refresh(t, c, s, d, rt), want)
				if got := s.RefreshReuses(); got != 1 {
					t.Errorf("RefreshReuses: got %d, want 1", got)
				}
			})
		}
	}
}

// TestRefuseRefreshes: a forced refusal hits a valid token; the client heals
// through its base grant, which is never refused.
func TestRefuseRefreshes(t *testing.T) {
	for _, d := range refreshDialects {
		for _, shape := range concreteShapes {
			consumed := shape.revokes()
			name := fmt.Sprintf("%s/%v/token left redeemable", d, shape)
			if consumed {
				name = fmt.Sprintf("%s/%v/token consumed", d, shape)
			}
			t.Run(name, func(t *testing.T) {
				s, c := start(t, Options{})
				s.RefuseRefreshes(1, shape)
				rt := mint(t, c, s, d).str(t, "refresh_token") // not refused: a base grant
				wantRefusal(t, refresh(t, c, s, d, rt), shape)
				wantStatus(t, mint(t, c, s, d), http.StatusOK) // the client heals
				wantCounts(t, s, minted(d, 2))

				// A client must not send the refused token again; if it does,
				// it is counted, and the shape decides whether it works.
				again := refresh(t, c, s, d, rt)
				if consumed {
					wantRefusal(t, again, defaultRefusal(d))
				} else {
					wantStatus(t, again, http.StatusOK)
				}
				if got := s.RefreshReuses(); got != 1 {
					t.Errorf("RefreshReuses: got %d, want 1", got)
				}
			})
		}
	}

	t.Run("RefuseDefault uses each dialect's configured shape", func(t *testing.T) {
		s, c := start(t, Options{})
		s.SetRefreshRefusal(OAuth2, RefuseInvalidToken)
		s.RefuseRefreshes(3, RefuseDefault)
		for d, want := range map[Dialect]RefusalShape{OAuth2: RefuseInvalidToken, Echo360: RefuseInvalidGrant, APIVideo: RefuseProblemJSON} {
			wantRefusal(t, refresh(t, c, s, d, s.SeedRefreshToken(d, owner(d))), want)
		}
	})

	t.Run("runs queue up across dialects in arrival order", func(t *testing.T) {
		s, c := start(t, Options{})
		s.RefuseRefreshes(1, RefuseInvalidRequest)
		s.RefuseRefreshes(2, RefuseErrorIn200)
		steps := []struct {
			d    Dialect
			want RefusalShape // RefuseDefault: success
		}{{Echo360, RefuseInvalidRequest}, {APIVideo, RefuseErrorIn200}, {OAuth2, RefuseErrorIn200}, {Echo360, RefuseDefault}}
		for i, step := range steps {
			t.Run(fmt.Sprintf("%d %s", i+1, step.d), func(t *testing.T) {
				r := refresh(t, c, s, step.d, s.SeedRefreshToken(step.d, owner(step.d)))
				if step.want == RefuseDefault {
					wantStatus(t, r, http.StatusOK)
					return
				}
				wantRefusal(t, r, step.want)
			})
		}
	})

	t.Run("requests answered before redemption keep the refusal queued", func(t *testing.T) {
		s, c := start(t, Options{})
		s.RefuseRefreshes(1, RefusePlainText403)
		rt := s.SeedRefreshToken(OAuth2, testClientID)
		noToken := url.Values{"grant_type": {"refresh_token"}}
		wantOAuthError(t, postForm(t, c, s.URL()+PathOAuth2Token, noToken, withBasic(testClientID, testClientSecret)), 400, "invalid_request")
		badClient := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		wantOAuthError(t, postForm(t, c, s.URL()+PathOAuth2Token, badClient, withBasic(testClientID, "nope")), 401, "invalid_client")
		s.Fail(1, Fail500)
		wantStatus(t, refresh(t, c, s, OAuth2, rt), http.StatusInternalServerError)
		wantRefusal(t, refresh(t, c, s, OAuth2, rt), RefusePlainText403)
		wantStatus(t, refresh(t, c, s, OAuth2, s.SeedRefreshToken(OAuth2, testClientID)), http.StatusOK)
	})

	t.Run("ClearFailures cancels queued refusals", func(t *testing.T) {
		s, c := start(t, Options{})
		s.RefuseRefreshes(5, RefuseInvalidGrant)
		s.ClearFailures()
		wantStatus(t, refresh(t, c, s, Echo360, s.SeedRefreshToken(Echo360, testClientID)), http.StatusOK)
	})

	t.Run("n must be at least 1", func(t *testing.T) {
		s := New(Options{})
		wantPanic(t, "n must be at least 1", func() { s.RefuseRefreshes(0, RefuseInvalidGrant) })
	})
}

func TestRefusalShapeString(t *testing.T) {
	for shape, want := range map[RefusalShape]string{
		RefuseDefault: "RefuseDefault", RefuseErrorIn200: "RefuseErrorIn200", RefuseProblemJSON: "RefuseProblemJSON", RefusalShape(99): "RefusalShape(99)",
	} {
		if got := shape.String(); got != want {
			t.Errorf("String: got %q, want %q", got, want)
		}
	}
}

// wantRefusal checks that r refuses a refresh in shape (never RefuseDefault).
func wantRefusal(t *testing.T, r response, shape RefusalShape) {
	t.Helper()
	switch shape {
	case RefuseInvalidGrant:
		wantOAuthError(t, r, http.StatusBadRequest, "invalid_grant")
	case RefuseInvalidRequest:
		wantOAuthError(t, r, http.StatusBadRequest, "invalid_request")
	case RefuseInvalidToken:
		wantOAuthError(t, r, http.StatusUnauthorized, "invalid_token")
		if got := r.header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
			t.Errorf("WWW-Authenticate: got %q, want %q", got, `Bearer error="invalid_token"`)
		}
	case RefuseUnsupportedGrantType:
		wantOAuthError(t, r, http.StatusBadRequest, "unsupported_grant_type")
	case RefuseErrorIn200:
		wantStatus(t, r, http.StatusOK)
		wantContentType(t, r, "application/json")
		wantFields(t, r, map[string]any{"error": "bad_refresh_token", "access_token": nil})
	case RefusePlainText403:
		wantStatus(t, r, http.StatusForbidden)
		wantContentType(t, r, "text/plain")
		if string(r.body) != "Forbidden" {
			t.Errorf("body: got %q, want %q", r.body, "Forbidden")
		}
	case RefuseProblemJSON:
		wantProblem(t, r, http.StatusBadRequest, "The refresh token is either expired or invalid.")
	default:
		t.Fatalf("wantRefusal(%v): not a concrete shape", shape)
	}
}

// defaultRefusal is d's refusal shape when none is set.
func defaultRefusal(d Dialect) RefusalShape {
	if d == APIVideo {
		return RefuseProblemJSON
	}
	return RefuseInvalidGrant
}

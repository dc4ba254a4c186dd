package fakeprovider

// The device authorization grant (RFC 8628), strict about timing: a poll
// sooner than the interval after the last one is answered slow_down and
// lengthens the interval by 5 s (§3.5), by the server's clock.

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

type deviceRecord struct {
	client, scope, userCode string
	account                 string // the sub of the approving account (account.go)
	expires, lastPoll       time.Time
	interval                time.Duration
	approved, denied, spent bool
}

// Device flow defaults: RFC 8628 §3.2's 5 s interval and a 10-minute code.
const (
	defaultDeviceInterval = 5 * time.Second
	defaultDeviceLifetime = 10 * time.Minute
)

// SetDeviceTiming sets the interval and lifetime of device codes issued from
// now on (0: 5 s and 10 minutes).
func (s *Server) SetDeviceTiming(interval, lifetime time.Duration) {
	s.user.mu.Lock()
	defer s.user.mu.Unlock()
	s.user.deviceInterval, s.user.deviceLifetime = interval, lifetime
}

// handleDeviceAuthorization serves POST /oauth2/device_authorization (§3.1,
// §3.2) for an authenticated client.
func (s *Server) handleDeviceAuthorization(w http.ResponseWriter, x *exchange) {
	form, err := url.ParseQuery(string(x.body))
	if x.r.Method != http.MethodPost || mediaType(x.r) != contentTypeForm || err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "POST a form body", false)
		return
	}
	clientID, _, ok := s.authenticateOAuth2(w, x.r, form)
	if !ok {
		return
	}
	s.user.mu.Lock()
	interval, lifetime := s.user.deviceInterval, s.user.deviceLifetime
	if interval <= 0 {
		interval = defaultDeviceInterval
	}
	if lifetime <= 0 {
		lifetime = defaultDeviceLifetime
	}
	code, user := newToken("dc_"), strings.ToUpper(newToken("")[:4]+"-"+newToken("")[:4])
	s.user.devices[code] = &deviceRecord{client: clientID, scope: strings.Join(strings.Fields(form.Get("scope")), " "),
		userCode: user, expires: s.now().Add(lifetime), interval: interval}
	s.user.mu.Unlock()
	verify := s.URL() + PathDevice
	writeJSON(w, http.StatusOK, contentTypeJSON, map[string]any{
		"device_code": code, "user_code": user, "verification_uri": verify,
		"verification_uri_complete": verify + "?user_code=" + url.QueryEscape(user),
		"expires_in":                int(lifetime / time.Second), "interval": int(interval / time.Second),
	})
}

// ApproveDevice plays the user who enters userCode and approves, as the
// account SetAccount set.
func (s *Server) ApproveDevice(userCode string) error { return s.decideDevice(userCode, true) }

// DenyDevice plays the user who enters userCode and denies.
func (s *Server) DenyDevice(userCode string) error { return s.decideDevice(userCode, false) }

func (s *Server) decideDevice(userCode string, approve bool) error {
	account := s.approvingAccount("")
	s.user.mu.Lock()
	defer s.user.mu.Unlock()
	for _, rec := range s.user.devices {
		if rec.userCode == userCode && s.now().Before(rec.expires) {
			rec.approved, rec.denied, rec.account = approve, !approve, account
			return nil
		}
	}
	return errors.New("unknown or expired user code")
}

// handleDeviceCode answers a poll of the token endpoint (§3.4, §3.5).
func (s *Server) handleDeviceCode(w http.ResponseWriter, clientID string, basic bool, form url.Values) {
	s.user.mu.Lock()
	rec := s.user.devices[form.Get("device_code")]
	now := s.now()
	code, problem := "", ""
	switch {
	case rec == nil || rec.client != clientID || rec.spent:
		code, problem = "invalid_grant", "unknown or used device code"
	case !now.Before(rec.expires):
		code, problem = "expired_token", "the device code expired"
	case !rec.lastPoll.IsZero() && now.Sub(rec.lastPoll) < rec.interval:
		rec.interval += 5 * time.Second
		code, problem = "slow_down", "polled sooner than the interval"
	case rec.denied:
		code, problem = "access_denied", "the user denied the request"
	case !rec.approved:
		code, problem = "authorization_pending", "the user has not decided yet"
	}
	if rec != nil {
		rec.lastPoll = now
		rec.spent = rec.spent || rec.approved
	}
	s.user.mu.Unlock()
	if code != "" {
		oauthError(w, http.StatusBadRequest, code, problem, basic)
		return
	}
	writeOAuth2Token(w, s.issueAccount(rec.account, clientID, rec.scope, grantDeviceCode), "Bearer")
}

package tokenbroker

// Device authorizations (RFC 8628): device/<name> asks the provider for a
// user code and stores the pending authorization; a poller, one per name on
// the node that can write storage, asks the token endpoint until the user
// has decided or the code expires. The periodic pass restarts pollers after
// a restart or failover.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// devicePrefix holds pending device authorizations, by name.
const devicePrefix = authPrefix + "device/"

// slowDownStep is how much longer the interval gets with each slow_down (RFC 8628 §3.5).
const slowDownStep = 5 * time.Second

// pendingDevice is a device authorization awaiting the user's decision.
type pendingDevice struct {
	DeviceCode              string        `json:"device_code"` // a credential: never shown
	UserCode                string        `json:"user_code"`
	VerificationURI         string        `json:"verification_uri"`
	VerificationURIComplete string        `json:"verification_uri_complete,omitempty"`
	ExpiresAt               time.Time     `json:"expires_at"`
	Interval                time.Duration `json:"interval"`
	RequestedBy             string        `json:"requested_by,omitempty"`
	// The user's own connection it makes (self/<app>/device), if any.
	selfConnection
}

// beginDevice asks the provider for a user code for name, stores the pending
// authorization (replacing an earlier one) and starts polling.
func (b *backend) beginDevice(ctx context.Context, s logical.Storage, name, who string, self selfConnection) (*pendingDevice, error) {
	lock := b.lockFor(name)
	lock.Lock()
	defer lock.Unlock()
	r, err := b.connectionRenewal(ctx, s, name, self)
	if err != nil {
		return nil, err
	}
	if r.cfg.DeviceURL == "" || r.cfg.ClientID == "" {
		return nil, logical.CodedError(http.StatusBadRequest, fmt.Sprintf(
			"config %q needs client_id and device_authorization_url (or an issuer or provider preset that gives one) for a device authorization", name))
	}
	ep := r.endpoint()
	var da *provider.DeviceAuthorization
	err = b.send(b.ctx, r.request(requestDeviceAuthorization, ep.DeviceURL), func(ctx context.Context, c *provider.Client) (err error) {
		da, err = c.StartDevice(ctx, ep)
		return err
	})
	if errors.Is(err, logical.ErrReadOnly) {
		return nil, err
	}
	if err != nil {
		return nil, logical.CodedError(http.StatusBadGateway, fmt.Sprintf("device authorization of %s: %v", name, err))
	}
	p := &pendingDevice{DeviceCode: da.DeviceCode, UserCode: da.UserCode, VerificationURI: da.VerificationURI,
		VerificationURIComplete: da.VerificationURIComplete, ExpiresAt: b.now().Add(da.ExpiresIn), Interval: da.Interval, RequestedBy: who,
		selfConnection: self}
	if err := deviceEntries.save(ctx, s, name, p); err != nil {
		return nil, err
	}
	b.refreshLog.Info("authorization started", "name", name, "flow", "device", "by", who, "expires_at", p.ExpiresAt)
	b.startPoller(name)
	return p, nil
}

// startPoller starts name's poller unless one runs.
func (b *backend) startPoller(name string) {
	if _, running := b.onboard.pollers.LoadOrStore(name, struct{}{}); running {
		return
	}
	b.onboard.polls.Add(1)
	go func() {
		defer b.onboard.polls.Done()
		for {
			b.pollUntilDecided(name)
			b.onboard.pollers.Delete(name)
			// A device/<name> write that found us running relied on us: look
			// once more, now that a new write would start its own poller.
			var p pendingDevice
			if found, err := deviceEntries.loadInto(b.ctx, b.storage, name, &p); err != nil || !found || b.ctx.Err() != nil {
				return
			}
			if _, running := b.onboard.pollers.LoadOrStore(name, struct{}{}); running {
				return
			}
		}
	}()
}

// pollUntilDecided polls the stored pending authorization of name (which a
// newer device/<name> may replace meanwhile) until none is left.
func (b *backend) pollUntilDecided(name string) {
	var interval time.Duration
	var code string
	for {
		var p pendingDevice
		found, err := deviceEntries.loadInto(b.ctx, b.storage, name, &p)
		if err != nil || !found {
			return
		}
		if p.DeviceCode != code { // a new authorization: its own interval
			code, interval = p.DeviceCode, max(p.Interval, time.Second)
		}
		if !b.wait(b.ctx, interval) || !b.WriteSafeReplicationState() {
			return
		}
		if slower := b.pollOnce(name, code); slower {
			interval += slowDownStep
		}
	}
}

// pollOnce asks the provider once about name's authorization whose device
// code is code; it reports whether the provider asked us to slow down. A
// decision (a token, a refusal, expiry) ends the pending authorization.
func (b *backend) pollOnce(name, code string) (slowDown bool) {
	lock := b.lockFor(name)
	lock.Lock()
	defer lock.Unlock()
	ctx := b.ctx
	var p pendingDevice
	if found, err := deviceEntries.loadInto(ctx, b.storage, name, &p); err != nil || !found || p.DeviceCode != code {
		return false // replaced or finished meanwhile; the loop reloads
	}
	end := func(result string) {
		if err := deviceEntries.delete(ctx, b.storage, name); err != nil {
			b.refreshLog.Error("pending device authorization not removed", "name", name, "error", err)
		}
		b.recordOutcome(name, result)
	}
	if !b.now().Before(p.ExpiresAt) {
		end("the device authorization expired before the user approved it")
		return false
	}
	r, err := b.connectionRenewal(ctx, b.storage, name, p.selfConnection)
	if err != nil {
		end("the config could not be loaded: " + err.Error())
		return false
	}
	ep := r.endpoint()
	tok, err := b.connectCall(r, provider.GrantDeviceCode, func(ctx context.Context, c *provider.Client) (*provider.Token, error) {
		return c.PollDevice(ctx, ep, p.DeviceCode)
	})
	var pe *provider.Error
	switch {
	case err == nil:
		result := "connected"
		if err := b.completeConnection(ctx, b.storage, r, p.selfConnection, obtained{tok, provider.GrantDeviceCode}, connection{By: p.RequestedBy}); err != nil {
			b.refreshLog.Error("device authorization", "name", name, "error", err)
			result = "not connected: " + err.Error()
		}
		end(result)
	case errors.As(err, &pe) && pe.Code == provider.DevicePending:
	case errors.As(err, &pe) && pe.Code == provider.DeviceSlowDown:
		return true
	case errors.As(err, &pe) && pe.Code == provider.DeviceDenied:
		end("the user denied the device authorization")
	case errors.As(err, &pe) && pe.Code == provider.DeviceExpired:
		end("the device authorization expired before the user approved it")
	case errors.As(err, &pe) && pe.Class == provider.Refused:
		end("the provider refused the device authorization: " + err.Error())
	default:
		// Temporary, or lost: ask again after the interval (a device code
		// that was redeemed without our hearing is refused next time).
	}
	return false
}

// wait sleeps d, or until ctx ends (false).
func (b *backend) wait(ctx context.Context, d time.Duration) bool {
	if b.onboard.wait != nil {
		return b.onboard.wait(ctx, d)
	}
	sleep(ctx, d)
	return ctx.Err() == nil
}

// resumePollers, run by the periodic pass, restarts the pollers of pending
// device authorizations (after a restart or failover).
func (b *backend) resumePollers(ctx context.Context, s logical.Storage) {
	names, err := deviceEntries.list(ctx, s)
	if err != nil {
		b.refreshLog.Warn("list pending device authorizations", "error", err)
	}
	for _, name := range names {
		b.startPoller(name)
	}
}

// deleteAuthorizations drops name's pending authorizations (its config is deleted).
func deleteAuthorizations(ctx context.Context, s logical.Storage, name string) error {
	if err := codeEntries.delete(ctx, s, name); err != nil {
		return err
	}
	return deviceEntries.delete(ctx, s, name)
}

// pendingStatus adds name's pending authorization and connection to status data.
func (b *backend) pendingStatus(ctx context.Context, s logical.Storage, name string, snap *snapshot, data map[string]any) error {
	data["connected_at"], data["connected_by"], data["authorization_params"] = "", "", map[string]string{}
	data["account_subject"], data["account_email"] = "", ""
	if st := snap.state; st != nil && st.Connected != nil {
		data["connected_at"], data["connected_by"] = timeOrEmpty(st.Connected.At), st.Connected.By
		data["authorization_params"] = nonNilMap(st.Connected.Params)
		data["account_subject"], data["account_email"] = st.Connected.Subject, st.Connected.Email
	}
	if snap.owner != "" {
		data["owner"] = snap.owner
	}
	if ref, err := configEntries.load(ctx, s, name); err != nil {
		return err
	} else if ref != nil && ref.App != "" {
		data["app"] = ref.App
	}
	data["pending_authorization"], data["pending_authorization_expires_at"] = "", ""
	var code pendingCode
	var dev pendingDevice
	if found, err := codeEntries.loadInto(ctx, s, name, &code); err != nil {
		return err
	} else if found && b.now().Before(code.ExpiresAt) {
		data["pending_authorization"], data["pending_authorization_expires_at"] = "browser", timeOrEmpty(code.ExpiresAt)
	}
	if found, err := deviceEntries.loadInto(ctx, s, name, &dev); err != nil {
		return err
	} else if found {
		data["pending_authorization"], data["pending_authorization_expires_at"] = "device", timeOrEmpty(dev.ExpiresAt)
		data["user_code"], data["verification_uri"] = dev.UserCode, cmp.Or(dev.VerificationURIComplete, dev.VerificationURI)
	}
	if o, ok := b.onboard.outcomes.Load(name); ok {
		data["last_authorization"], data["last_authorization_at"] = o.(outcome).result, timeOrEmpty(o.(outcome).at)
	}
	return nil
}

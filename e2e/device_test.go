//go:build e2e

package e2e

// A device authorization (RFC 8628) against the real OpenID provider: Vault
// asks for a user code, the user approves in a browser on "another device",
// Vault's background poller (honouring the provider's 5 s interval) connects
// the chain, and the provider's introspection accepts the token.

import (
	"strings"
	"testing"
	"time"
)

func TestDeviceAuthorization(t *testing.T) {
	v := StartVaultWithPlugin(t)
	op := StartOP(t)
	browser := StartBrowser(t)
	v.WriteConfig("tv", "issuer="+op.Issuer, "client_id="+opDeviceClient, "client_secret="+opClientSecret,
		"scopes=openid,offline_access")

	start := vaultData(v, "write", "-force", mountPath+"/device/tv")
	complete, _ := start["verification_uri_complete"].(string)
	if start["user_code"] == "" || !strings.HasPrefix(complete, op.Issuer+"device?user_code=") || start["interval"] != float64(5) {
		t.Fatalf("device/tv = %v, want a user code, the OP's verification URI and its 5 s interval", start)
	}
	status := vaultData(v, "read", mountPath+"/status/tv")
	if status["pending_authorization"] != "device" || status["user_code"] != start["user_code"] {
		t.Fatalf("status while pending = %v, want the pending device authorization", status)
	}

	if page := browser.ApproveDevice(complete); !strings.Contains(page, "allowed") {
		t.Fatalf("the OP's page after allowing: %q", page)
	}
	eventually(t, 30*time.Second, 250*time.Millisecond, "the poller to connect tv", func() bool {
		return vaultData(v, "read", mountPath+"/status/tv")["last_authorization"] == "connected"
	})
	status = vaultData(v, "read", mountPath+"/status/tv")
	if status["pending_authorization"] != "" || status["connected_at"] == "" {
		t.Fatalf("status after approval = %v, want connected and nothing pending", status)
	}
	first := v.ReadCreds("tv").AccessToken
	if !op.Active(opDeviceClient, first) {
		t.Fatal("the provider's introspection does not accept the device-authorized token")
	}
	v.Must("delete", mountPath+"/creds/tv") // evict the access token: the next read refreshes
	second := v.ReadCreds("tv").AccessToken
	if second == first || !op.Active(opDeviceClient, second) {
		t.Fatal("the device-authorized chain did not rotate to a new active token")
	}
}

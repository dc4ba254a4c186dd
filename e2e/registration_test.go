//go:build e2e

package e2e

import (
	"strings"
	"testing"
)

// The plugin registers the production way (pinned sha256 + version), mounts at a
// chosen version, and Vault reports that version as the one running.
func TestRegistration(t *testing.T) {
	t.Parallel()
	v := StartVaultWithPlugin(t)

	info := v.JSON("plugin", "info", "-format=json", "-version="+pluginVersion, "secret", pluginName)
	if info["sha256"] != v.bin.pluginSHA || info["version"] != pluginVersion || info["builtin"] != false {
		t.Errorf("plugin info: sha256=%v version=%v builtin=%v, want %s %s false",
			info["sha256"], info["version"], info["builtin"], v.bin.pluginSHA, pluginVersion)
	}

	mounts := v.JSON("secrets", "list", "-detailed", "-format=json")
	m, ok := mounts[mountPath+"/"].(map[string]any)
	if !ok {
		t.Fatalf("no %s/ mount in `vault secrets list -detailed`: %v", mountPath, mounts)
	}
	for key, want := range map[string]string{
		"type":                   pluginName,
		"plugin_version":         pluginVersion,
		"running_plugin_version": pluginVersion,
		"running_sha256":         v.bin.pluginSHA,
	} {
		if got := m[key]; got != want {
			t.Errorf("secrets list -detailed: %s = %v, want %s", key, got, want)
		}
	}

	// The table view an operator looks at shows the version too.
	if out := v.Must("secrets", "list", "-detailed"); !strings.Contains(out, pluginVersion) {
		t.Errorf("`vault secrets list -detailed` does not show %s:\n%s", pluginVersion, out)
	}
}

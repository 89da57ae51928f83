package vmcpkeepalive

import (
	"os"
	"path/filepath"
	"testing"
)

// The module embeds copies of the shared scripts; they must stay byte-for-byte equal to the
// files the TypeScript client and the workers run, or the SHAs (and the behaviour) would differ.
func TestEmbeddedScriptsEqualTheSharedFiles(t *testing.T) {
	for name, embedded := range map[string]string{
		"release-lock-1.lua":      releaseLockSource,
		"reinitialize-pair-1.lua": reinitializePairSource,
	} {
		shared, err := os.ReadFile(filepath.Join(repoRoot(t), "packages/shared/lua", name))
		if err != nil {
			t.Fatal(err)
		}
		if string(shared) != embedded {
			t.Errorf("clients/go/lua/%s differs from packages/shared/lua/%s: copy it again", name, name)
		}
	}
}

// Package testutil holds small helpers shared by uplinkd's privileged tests.
package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// RequirePriv skips t unless the test runs as root. When UPLINKD_REQUIRE_PRIV=1
// (set by .ci/run) a missing privilege fails the test instead, so a CI run
// cannot pass by silently skipping the kernel tests.
func RequirePriv(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("UPLINKD_REQUIRE_PRIV") == "1" {
		t.Fatal("privileged test needs root (CAP_NET_ADMIN, CAP_NET_RAW) and UPLINKD_REQUIRE_PRIV=1 forbids skipping")
	}
	t.Skip("privileged test: needs root (set UPLINKD_REQUIRE_PRIV=1 to make this a failure)")
}

// RequireTool returns the path of program, or skips t when it is not
// installed. Under UPLINKD_REQUIRE_PRIV=1 (CI, where .ci/run installs what
// the tests need) a missing program fails the test instead.
func RequireTool(t testing.TB, program string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err == nil {
		return p
	}
	if os.Getenv("UPLINKD_REQUIRE_PRIV") == "1" {
		t.Fatalf("%s is not installed and UPLINKD_REQUIRE_PRIV=1 forbids skipping: %v", program, err)
	}
	t.Skipf("%s is not installed", program)
	return ""
}

package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/netops"
	"github.com/uplinkd/uplinkd/test/testutil"
)

// hashNow reads both families' multipath hash sysctls of the caller's
// namespace as "v4policy v4fields v6policy v6fields".
func hashNow() (string, error) {
	var out []string
	for _, fam := range []string{"ipv4", "ipv6"} {
		for _, name := range []string{"fib_multipath_hash_policy", "fib_multipath_hash_fields"} {
			b, err := os.ReadFile("/proc/sys/net/" + fam + "/" + name)
			if err != nil {
				return "", err
			}
			out = append(out, strings.TrimSpace(string(b)))
		}
	}
	return strings.Join(out, " "), nil
}

// TestHashState sets, persists and restores both families' multipath
// hash, in a namespace of its own; IPv6 never gets policy 0, and its hash
// is uplinkd's only while some uplink has IPv6.
func TestHashState(t *testing.T) {
	testutil.RequirePriv(t)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ns := "hs-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	dir := t.TempDir()
	state := filepath.Join(dir, hashStateFile)

	var steps []string
	err := testutil.InNS(ns, func() {
		note := func(what string) {
			now, err := hashNow()
			if err != nil {
				now = err.Error()
			}
			file, err := os.ReadFile(state)
			if err != nil {
				file = []byte("none")
			}
			steps = append(steps, fmt.Sprintf("%s: %s / %s", what, now, strings.TrimSpace(string(file))))
		}
		fail := func(err error) { steps = append(steps, "error: "+err.Error()) }
		// Originals: IPv4 l3, IPv6 l4, fields of their own.
		if _, err := netops.SetMultipathHash(netops.Hash{Policy: 0, Fields: 0x05}); err != nil {
			fail(err)
			return
		}
		if _, err := netops.SetMultipathHashFor(netops.V6, netops.Hash{Policy: 1, Fields: 0x0b}); err != nil {
			fail(err)
			return
		}
		note("start")
		hs, err := setHash(dir, netops.HashFlows, true)
		if err != nil {
			fail(err)
			return
		}
		note("l4")
		// A crash, then a run with another hash: the file's originals win.
		hs2, err := setHash(dir, netops.HashSources, true)
		if err != nil {
			fail(err)
			return
		}
		note("source after crash")
		if err := hs2.apply(netops.HashHosts, true); err != nil {
			fail(err)
			return
		}
		note("reload l3")
		if err := hs2.restore(); err != nil {
			fail(err)
			return
		}
		note("restored")
		if err := hs.restore(); err != nil { // the crashed run's: a no-op
			fail(err)
			return
		}
		note("restored twice")
		// A file of a version without IPv6: IPv6's original is the
		// current one, and is saved.
		if err := os.WriteFile(state, []byte("0 0\n"), 0o644); err != nil {
			fail(err)
			return
		}
		hs3, err := setHash(dir, netops.HashFlows, true)
		if err != nil {
			fail(err)
			return
		}
		note("old file")
		if err := hs3.restore(); err != nil {
			fail(err)
			return
		}
		note("restored again")
		// No uplink has IPv6: IPv6's hash is left alone, the file holds
		// IPv4's original only (as before IPv6).
		hs4, err := setHash(dir, netops.HashFlows, false)
		if err != nil {
			fail(err)
			return
		}
		note("IPv4 only")
		// A reload adds an uplink with IPv6, then removes it: IPv6's
		// original is kept, then restored at once.
		if err := hs4.apply(netops.HashFlows, true); err != nil {
			fail(err)
			return
		}
		note("reload with IPv6")
		if err := hs4.apply(netops.HashHosts, false); err != nil {
			fail(err)
			return
		}
		note("reload without IPv6")
		// A crash with IPv6 set, then a run without IPv6: IPv6's
		// original comes back at start.
		if err := hs4.apply(netops.HashFlows, true); err != nil {
			fail(err)
			return
		}
		hs5, err := setHash(dir, netops.HashFlows, false)
		if err != nil {
			fail(err)
			return
		}
		note("IPv4 only after crash")
		if err := hs5.restore(); err != nil {
			fail(err)
			return
		}
		note("restored IPv4 only")
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"start: 0 5 1 11 / none",
		"l4: 1 5 3 55 / 0 0 1 11",
		"source after crash: 3 1 3 1 / 0 0 1 11",
		"reload l3: 0 1 3 3 / 0 0 1 11",
		// IPv4's fields stay as the custom hash left them: policy 0
		// ignores them (as before IPv6).
		"restored: 0 1 1 11 / none",
		"restored twice: 0 1 1 11 / none",
		"old file: 1 1 3 55 / 0 0 1 11",
		"restored again: 0 1 1 11 / none",
		"IPv4 only: 1 1 1 11 / 0 0",
		"reload with IPv6: 1 1 3 55 / 0 0 1 11",
		"reload without IPv6: 0 1 1 11 / 0 0",
		"IPv4 only after crash: 1 1 1 11 / 0 0",
		"restored IPv4 only: 0 1 1 11 / none",
	}
	if got := strings.Join(steps, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("steps:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if _, _, found, err := readHashState(filepath.Join(dir, "missing")); err != nil || found {
		t.Fatalf("no file: found %v, err %v", found, err)
	}
	if err := os.WriteFile(state, []byte("1 2 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := readHashState(state); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file of three numbers: %v", err)
	}
}

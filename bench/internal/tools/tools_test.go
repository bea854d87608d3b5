package tools

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseSinceEvent(t *testing.T) {
	d, ok := parseSinceEvent(`time=2026-11-25T09:20:01.123Z level=INFO msg="routing updated" changes=1 reconcile=312µs since_event=1.401ms added=[] removed=[]`)
	if !ok || d != 1401*time.Microsecond {
		t.Errorf("got %v, %v", d, ok)
	}
	if _, ok := parseSinceEvent(`level=INFO msg=transition since_event=1ms`); ok {
		t.Error("figure taken from another message")
	}
}

// TestSeedCopies maps the real seed and compares it with bench/seed, as
// the bench does before it runs.
func TestSeedCopies(t *testing.T) {
	article := filepath.Join("..", "..", "..", "..", "shared", "seed", "000_5d0123547500dfcb.txt")
	if _, err := os.Stat(article); err != nil {
		t.Skipf("the seed is not next to the repository: %v", err)
	}
	scripts, err := MapSeed(article)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckSeedCopies(scripts, filepath.Join("..", "..", "seed")); err != nil {
		t.Fatal(err)
	}
	daemon := scripts["check_isp_connectivity.sh"]
	for _, want := range []string{"INET2_GW='203.0.113.1'", "check_interval=5", `LOGFILE="${SEED_RUN_DIR}/`, "ping -W 1 -q -c 3 -I ${IFACE} ${test_ip}"} {
		if !strings.Contains(daemon, want) {
			t.Errorf("mapped daemon lacks %q", want)
		}
	}
	if strings.Contains(strings.Join([]string{daemon, scripts["enable_balanced_routing"]}, ""), "192.168.") {
		t.Error("an article address is left")
	}
	if _, err := MapSeed(filepath.Join(t.TempDir(), "missing.txt")); err == nil || !strings.Contains(err.Error(), "seed") {
		t.Errorf("missing seed: %v", err)
	}
}

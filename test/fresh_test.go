package test

import (
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// Issue 9, fresh judgement: an uplink back from a 10 s blackhole is judged
// on the probes sent since it came back, so it returns straight to active
// (not degraded on the outage's losses) within up_after × interval plus a
// margin for the outage's last rounds to time out and a busy machine.
func TestHealthFreshAfterOutage(t *testing.T) {
	r := newRig(t, healthConfig("flap_limit = 0"))
	r.startEmu()
	r.start()
	r.waitBoth()

	mark := r.mark()
	r.setISP(lab.ISP2, "blackhole")
	r.waitTransition(mark, "isp2", "probing", 10*time.Second)
	r.waitOnly("eth1")
	time.Sleep(10 * time.Second) // the outage: its length is the point of the test

	mark = r.mark()
	healed := time.Now()
	r.setISP(lab.ISP2, "healthy")
	// up_after × interval = 1s; the margin covers the outage's rounds
	// still waiting for their 430ms timeout and a loaded machine.
	const within = 2*500*time.Millisecond + 1500*time.Millisecond
	line := r.waitTransition(mark, "isp2", "active", within)
	took := time.Since(healed)
	if !strings.Contains(line, "from=probing") {
		t.Fatalf("isp2 came back through %s, want probing -> active", line)
	}
	t.Logf("isp2 active %v after the blackhole ended", took.Round(time.Millisecond))
	r.waitBoth()
	// Its window fills with good probes: no degradation follows.
	st := uplinkOf(t, r.status(), lab.ISP2).Probe
	if st.Stats.Loss > 0 {
		t.Errorf("status statistics after the outage still show loss: %+v", st.Stats)
	}
	if trs := r.transitions(mark, "isp2"); len(trs) != 1 {
		t.Errorf("isp2 transitions after the repair: %+v, want only probing -> active", trs)
	}
}

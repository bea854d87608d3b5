package traffic

import (
	"testing"
	"time"
)

func TestCapture(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) int64 { return t0.Add(time.Duration(ms) * time.Millisecond).UnixNano() }
	c := Capture{Ifaces: []string{"lo", "isp1", "isp2"}}
	// Flow 0: isp2 every ms until 10 ms, nothing until 50 ms, then isp1.
	for ms := 0; ms < 10; ms++ {
		c.Arrivals = append(c.Arrivals, Arrival{At: at(ms), Flow: 0, Kind: LAN, If: 2})
	}
	for ms := 50; ms < 100; ms++ {
		c.Arrivals = append(c.Arrivals, Arrival{At: at(ms), Flow: 0, Kind: LAN, If: 1})
	}
	// Flow 1 stops at 20 ms and never comes back.
	for ms := 0; ms < 20; ms++ {
		c.Arrivals = append(c.Arrivals, Arrival{At: at(ms), Flow: 1, Kind: LAN, If: 1})
	}
	// New connections: sent at 30 ms via isp1, 40 ms and 45 ms via isp2.
	c.Arrivals = append(c.Arrivals,
		Arrival{At: at(31), Sent: at(30), Kind: NewConn, If: 1},
		Arrival{At: at(46), Sent: at(45), Kind: NewConn, If: 2},
		Arrival{At: at(41), Sent: at(40), Kind: NewConn, If: 2},
	)
	end := t0.Add(100 * time.Millisecond)
	if g := c.MaxGap(LAN, 0, t0, end); g != 41*time.Millisecond {
		t.Errorf("flow 0 gap %v, want 41ms", g)
	}
	if g := c.MaxGap(LAN, 1, t0, end); g != 81*time.Millisecond {
		t.Errorf("flow 1 gap %v, want 81ms (to the end of the period)", g)
	}
	if g := c.MaxGap(LAN, 7, t0, end); g != 100*time.Millisecond {
		t.Errorf("absent flow gap %v, want the whole period", g)
	}
	if p := c.Path(LAN, 0, t0, t0.Add(10*time.Millisecond), 100); p != "isp2" {
		t.Errorf("flow 0 path before: %q", p)
	}
	if p := c.Path(LAN, 0, t0.Add(5*time.Millisecond), end, 100); p != "isp1" {
		t.Errorf("flow 0 path after (majority): %q", p)
	}
	if p := c.Path(LAN, 0, t0, end, 20); p != "isp1" {
		t.Errorf("flow 0 path by its last 20 datagrams: %q", p)
	}
	if p := c.Path(LAN, 1, t0.Add(50*time.Millisecond), end, 100); p != "" {
		t.Errorf("flow 1 path after it stopped: %q", p)
	}
	bins := c.Bins(t0, end, 10*time.Millisecond)
	if len(bins["isp2"]) != 10 || bins["isp2"][0] != 10 || bins["isp2"][1] != 0 || bins["isp1"][5] != 10 || bins["isp1"][1] != 10 {
		t.Errorf("bins %v", bins)
	}
	if d, ok := c.FirstNewConn("isp2", t0.Add(35*time.Millisecond)); !ok || d != 5*time.Millisecond {
		t.Errorf("FirstNewConn isp2 = %v, %v; want 5ms", d, ok)
	}
	if _, ok := c.FirstNewConn("isp1", t0.Add(35*time.Millisecond)); ok {
		t.Error("FirstNewConn isp1 after 35ms found one")
	}
}

func TestPacket(t *testing.T) {
	h := header{kind: Control, flow: 7, seq: 123456, sent: 987654321}
	got, err := parse(h.marshal(make([]byte, pktSize)))
	if err != nil || got != h {
		t.Fatalf("parse(marshal(%+v)) = %+v, %v", h, got, err)
	}
	if _, err := parse([]byte("not a bench datagram")); err == nil {
		t.Error("foreign datagram accepted")
	}
}

package ispemu

import (
	"encoding/binary"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/dns/dnsmessage"
)

func TestParseMode(t *testing.T) {
	tests := []struct {
		in   string
		want Mode
		err  string
	}{
		{"healthy", Mode{}, ""},
		{"blackhole", Mode{Loss: 1}, ""},
		{"lossy", Mode{Loss: 0.1}, ""},
		{"slow", Mode{Delay: 350 * time.Millisecond, Jitter: 30 * time.Millisecond}, ""},
		{"loss=40%", Mode{Loss: 0.4}, ""},
		{"loss=0.05 delay=20ms", Mode{Loss: 0.05, Delay: 20 * time.Millisecond}, ""},
		{"slow jitter=0s", Mode{Delay: 350 * time.Millisecond}, ""},
		{"lossy loss=40%", Mode{Loss: 0.4}, ""},
		{"", Mode{}, ""},
		{"fast", Mode{}, "unknown mode"},
		{"loss=140%", Mode{}, "not between"},
		{"loss=much", Mode{}, "loss=much"},
		{"delay=-1s", Mode{}, "negative"},
		{"colour=blue", Mode{}, "unknown setting"},
		{"healthy slow", Mode{}, "key=value"},
	}
	for _, tt := range tests {
		got, err := ParseMode(strings.Fields(tt.in))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseMode(%q) = %v, %v; want error with %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseMode(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		// String reads back.
		if back, err := ParseMode(strings.Fields(got.String())); err != nil || back != got {
			t.Errorf("ParseMode(%q) = %+v, %v; want %+v", got.String(), back, err, got)
		}
	}
}

func TestFate(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	m := Mode{Loss: 0.3, Delay: 100 * time.Millisecond, Jitter: 20 * time.Millisecond}
	const n = 20000
	lost := 0
	var lo, hi time.Duration = time.Hour, 0
	for range n {
		d, ok := m.fate(r)
		if !ok {
			lost++
			continue
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	if f := float64(lost) / n; f < 0.28 || f > 0.32 {
		t.Errorf("lost %.3f of requests, want 0.3", f)
	}
	if lo < 80*time.Millisecond || hi > 120*time.Millisecond || hi-lo < 35*time.Millisecond {
		t.Errorf("delays within [%v, %v], want spread over [80ms, 120ms]", lo, hi)
	}
	for range 100 {
		if d, ok := (Mode{}).fate(r); !ok || d != 0 {
			t.Fatalf("healthy: %v, %v", d, ok)
		}
		if _, ok := (Mode{Loss: 1}).fate(r); ok {
			t.Fatal("blackhole answered")
		}
		if d, ok := (Mode{Jitter: time.Second}).fate(r); !ok || d < 0 {
			t.Fatalf("delay %v below zero", d)
		}
	}
}

// valid reports whether an ICMP message's checksum is right: its one's
// complement sum, checksum included, is all ones.
func valid(b []byte) bool {
	var sum uint64
	for i := 0; i < len(b); i++ {
		if i%2 == 0 {
			sum += uint64(b[i]) << 8
		} else {
			sum += uint64(b[i])
		}
	}
	return sum%0xffff == 0 && sum != 0
}

func echoRequest(id, seq uint16, payload []byte) []byte {
	icmp := make([]byte, 8+len(payload))
	icmp[0] = 8
	binary.BigEndian.PutUint16(icmp[4:], id)
	binary.BigEndian.PutUint16(icmp[6:], seq)
	copy(icmp[8:], payload)
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
	ip := make([]byte, 20, 20+len(icmp))
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(icmp)))
	ip[9] = 1
	copy(ip[12:], []byte{203, 0, 113, 2})
	copy(ip[16:], []byte{198, 18, 0, 2})
	return append(ip, icmp...)
}

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		id, seq uint16
		payload string
	}{
		{0x1234, 1, "0123456789abcdef"},
		{0xffff, 0xffff, "\xff\xff\xff"},
		{0, 0, ""},
		{0xf7ff, 0, "x"}, // checksum arithmetic near the wrap
	} {
		pkt := echoRequest(tc.id, tc.seq, []byte(tc.payload))
		req, ok := parseRequest(append(pkt, 0, 0)) // with link-layer padding
		if !ok {
			t.Fatalf("request %+v not recognised", tc)
		}
		if req.src != netip.MustParseAddr("203.0.113.2") || req.dst != netip.MustParseAddr("198.18.0.2") {
			t.Errorf("src %v dst %v", req.src, req.dst)
		}
		want := append([]byte(nil), pkt[20:]...)
		want[0] = 0
		// Only the type and the checksum change.
		got := append([]byte(nil), req.reply...)
		copy(got[2:4], want[2:4])
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("reply (-want +got, checksum aside):\n%s", d)
		}
		if !valid(req.reply) {
			t.Errorf("reply %x has a bad checksum", req.reply)
		}
	}
	reply := echoRequest(1, 1, nil)
	reply[20] = 0
	if _, ok := parseRequest(reply); ok {
		t.Error("an echo reply taken for a request")
	}
	if _, ok := parseRequest(echoRequest(1, 1, nil)[:27]); ok {
		t.Error("a truncated packet taken for a request")
	}
}

func TestCommand(t *testing.T) {
	var e Emulator
	for _, tc := range []struct{ in, want string }{
		{"set isp2 loss=40%", "ok isp2 loss=40% delay=0s jitter=0s"},
		{"set isp1 slow", "ok isp1 loss=0% delay=350ms jitter=30ms"},
		{"set isp3 saturated", "ok isp3 loss=2% delay=400ms jitter=10ms"},
		{"set isp3 captive", "ok isp3 loss=0% delay=0s jitter=0s captive=true"},
		{"set isp3 healthy", "ok isp3 loss=0% delay=0s jitter=0s"},
		{"set isp1 fast", "error unknown mode"},
		{"set isp1", "error unknown command"},
		{"reboot", "error unknown command"},
		{"", "error empty command"},
	} {
		if got := e.command(tc.in); !strings.HasPrefix(got, tc.want) {
			t.Errorf("command(%q) = %q, want %q...", tc.in, got, tc.want)
		}
	}
	e.decide("isp2", t0)
	e.decide("isp3", t0)
	got := e.Stats()
	if got["isp2"].Requests != 1 || got["isp2"].Mode != "loss=40% delay=0s jitter=0s" || got["isp3"].Answered != 1 {
		t.Errorf("stats %+v", got)
	}
	if out := e.command("stats"); !strings.HasPrefix(out, `ok {"isp1":{"mode":"loss=0% delay=350ms jitter=30ms","requests":0`) {
		t.Errorf("stats command: %q", out)
	}
}

func TestRefusesUnnamedNamespace(t *testing.T) {
	// Tests run in the host's namespace, which `ip netns` does not name.
	if err := checkNamespace(); err == nil {
		t.Skip("the test process runs in a named network namespace")
	}
	var e Emulator
	if err := e.Run(t.Context(), t.TempDir()+"/ctl", nil); err == nil {
		t.Fatal("Run in the initial network namespace succeeded")
	}
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// TestPeak checks the most requests counted within any one second.
func TestPeak(t *testing.T) {
	var e Emulator
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// 4 a second, then a burst of 4 more within 100ms, then 4 a second.
	for _, ms := range []int{0, 250, 500, 750, 1000, 1010, 1020, 1030, 1040, 1250, 1500, 2600, 3700} {
		e.decide("isp1", at(ms))
	}
	// Within [250ms, 1250ms): 250, 500, 750, 1000..1040, 1250? no: 8.
	if got := e.Stats()["isp1"].Peak; got != 8 {
		t.Errorf("peak %d, want 8", got)
	}
}

// TestHTTP: 204 through a healthy ISP, a redirect to the portal through a
// captive one. The ISP is the interface of the route back to the client:
// lo for a client on 127.0.0.1.
func TestHTTP(t *testing.T) {
	var e Emulator
	srv := httptest.NewServer(&e)
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer client.CloseIdleConnections()
	get := func() (int, string) {
		resp, err := client.Get(srv.URL + "/generate_204")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location")
	}
	if code, _ := get(); code != http.StatusNoContent {
		t.Errorf("healthy: status %d, want 204", code)
	}
	e.Set("lo", Mode{Captive: true})
	if code, loc := get(); code != http.StatusFound || loc != PortalURL {
		t.Errorf("captive: status %d to %q, want 302 to the portal", code, loc)
	}
}

func TestDNSAnswer(t *testing.T) {
	name := dnsmessage.MustNewName("example.net.")
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 9, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, _ := b.Finish()
	resp, ok := DNSAnswer(q)
	if !ok {
		t.Fatal("no answer")
	}
	var p dnsmessage.Parser
	h, err := p.Start(resp)
	if err != nil || h.ID != 9 || !h.Response {
		t.Fatalf("header %+v, %v", h, err)
	}
	_ = p.SkipAllQuestions()
	if as, err := p.AllAnswers(); err != nil || len(as) != 1 {
		t.Errorf("answers %v, %v", as, err)
	}
	if _, ok := DNSAnswer(resp); ok {
		t.Error("answered a response")
	}
}

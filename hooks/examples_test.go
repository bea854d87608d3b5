package hooks

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/uplinkd/uplinkd/test/testutil"
)

// The example hooks shipped in examples/hooks, run by the Runner.

var examples, _ = filepath.Abs("../examples/hooks")

var quoted = Event{
	Uplink: "isp2", Interface: "eth2", From: "active", To: "down",
	Reason: `probe "198.18.0.1" \ failed`, Time: event.Time, Active: 1, Uplinks: 2,
}

func TestExampleSyslog(t *testing.T) {
	testutil.RequireTool(t, "logger")
	// A syslog socket of our own, passed to logger by the hook's extra
	// arguments, so the test leaves the host's log alone.
	sock := filepath.Join(t.TempDir(), "log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r, logs := start(t, 1, 8)
	r.Enqueue(Job{Hook: "on_transition", Argv: []string{filepath.Join(examples, "syslog"), "-u", sock}, Event: quoted, Timeout: 5 * time.Second})
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no syslog message: %v\nrunner log:\n%s", err, logs)
	}
	msg := string(buf[:n])
	// <28>: facility daemon (3) * 8 + severity warning (4).
	if !strings.HasPrefix(msg, "<28>") || !strings.Contains(msg, " uplinkd") ||
		!strings.HasSuffix(msg, `uplink isp2 (eth2) active -> down: probe "198.18.0.1" \ failed; 1 of 2 uplinks active`) {
		t.Errorf("syslog message: %q", msg)
	}
}

func TestExampleWebhook(t *testing.T) {
	testutil.RequireTool(t, "curl")
	type post struct {
		ctype string
		body  map[string]any
	}
	posts := make(chan post, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/hook" {
			http.NotFound(w, req)
			return
		}
		b, _ := io.ReadAll(req.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("body %q is not JSON: %v", b, err)
		}
		if req.Method != http.MethodPost || req.Header.Get("X-Test") != "yes" {
			t.Errorf("%s with X-Test %q", req.Method, req.Header.Get("X-Test"))
		}
		posts <- post{req.Header.Get("Content-Type"), m}
	}))
	defer srv.Close()
	r, logs := start(t, 1, 8)
	r.Enqueue(Job{Hook: "on_down", Argv: []string{filepath.Join(examples, "webhook"), srv.URL + "/hook", "-H", "X-Test: yes"},
		Event: quoted, Timeout: 5 * time.Second})
	select {
	case p := <-posts:
		want := map[string]any{
			"uplink": "isp2", "interface": "eth2", "from": "active", "to": "down",
			"reason": `probe "198.18.0.1" \ failed`, "time": "2024-05-01T12:00:00.123+02:00",
			"active": 1.0, "uplinks": 2.0,
		}
		if diff := cmp.Diff(want, p.body); diff != "" || p.ctype != "application/json" {
			t.Errorf("posted %s (-want +got):\n%s", p.ctype, diff)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("nothing posted; runner log:\n%s", logs)
	}
	waitFor(t, "hook done", 5*time.Second, func() bool { return strings.Contains(logs.String(), "hook done") })

	// An HTTP error fails the hook, and curl's message is logged.
	r.Enqueue(Job{Hook: "on_down", Argv: []string{filepath.Join(examples, "webhook"), srv.URL + "/missing"}, Event: quoted, Timeout: 5 * time.Second})
	waitFor(t, "hook failed", 5*time.Second, func() bool { return strings.Contains(logs.String(), "hook failed") })
	if l := logs.String(); !strings.Contains(l, "404") || !strings.Contains(l, `status="exit 22"`) {
		t.Errorf("log:\n%s", l)
	}
}

func TestExamplePrefix6Lifetime(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "radvd.conf")
	orig := "interface eth0 {\n\tprefix 2001:db8:1100::/64 {\n\t\tAdvPreferredLifetime 14400; # uplinkd:isp1\n\t};\n" +
		"\tprefix 2001:db8:2200::/64 {\n\t\tAdvPreferredLifetime 14400; # uplinkd:isp2\n\t};\n};\n"
	if err := os.WriteFile(conf, []byte(orig), 0o640); err != nil {
		t.Fatal(err)
	}
	r, logs := start(t, 1, 8)
	hook := []string{filepath.Join(examples, "prefix6-lifetime"), "isp2", conf, "3600", "-"}
	run := func(family, to string) string {
		t.Helper()
		e := quoted
		e.Family, e.To = family, to
		n := r.Stats().Started
		r.Enqueue(Job{Hook: "on_transition", Argv: hook, Event: e, Timeout: 5 * time.Second})
		waitFor(t, "hook done", 5*time.Second, func() bool { s := r.Stats(); return s.Started == n+1 && s.Running == 0 })
		if s := r.Stats(); s.Failed != 0 {
			t.Fatalf("hook failed:\n%s", logs)
		}
		b, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// IPv4's transitions leave the prefixes alone.
	if got := run("ipv4", "down"); got != orig {
		t.Fatalf("after an IPv4 transition:\n%s", got)
	}
	deprecated := strings.Replace(orig, "14400; # uplinkd:isp2", "0; # uplinkd:isp2", 1)
	if got := run("ipv6", "down"); got != deprecated {
		t.Fatalf("after isp2's IPv6 went down:\n%s", got)
	}
	if got := run("ipv6", "active"); got != strings.Replace(orig, "14400; # uplinkd:isp2", "3600; # uplinkd:isp2", 1) {
		t.Fatalf("after isp2's IPv6 came back:\n%s", got)
	}
	if fi, err := os.Stat(conf); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode: %v %v", fi.Mode(), err)
	}
}

package hooks

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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

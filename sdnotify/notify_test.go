package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeSystemd is a notify socket like the one systemd gives a service.
func fakeSystemd(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

func TestNotify(t *testing.T) {
	for _, tc := range []struct{ name, addr string }{
		{"path", filepath.Join(t.TempDir(), "notify")},
		{"abstract", "@uplinkd-test-" + strconv.Itoa(os.Getpid())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sd := fakeSystemd(t, tc.addr)
			t.Setenv("NOTIFY_SOCKET", tc.addr)
			n := FromEnv()
			if _, set := os.LookupEnv("NOTIFY_SOCKET"); set {
				t.Error("NOTIFY_SOCKET still set: hooks would inherit it")
			}
			if err := n.Ready("2 of 2 uplinks active"); err != nil {
				t.Fatal(err)
			}
			if got, want := read(t, sd), "READY=1\nSTATUS=2 of 2 uplinks active\n"; got != want {
				t.Errorf("Ready sent %q, want %q", got, want)
			}
			for _, step := range []struct {
				send func() error
				want string
			}{
				{n.Watchdog, "WATCHDOG=1\n"},
				{n.Stopping, "STOPPING=1\n"},
				{func() error { return n.Status("reloading") }, "STATUS=reloading\n"},
			} {
				if err := step.send(); err != nil {
					t.Fatal(err)
				}
				if got := read(t, sd); got != step.want {
					t.Errorf("sent %q, want %q", got, step.want)
				}
			}
			if err := n.Reloading(); err != nil {
				t.Fatal(err)
			}
			if got := read(t, sd); !regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=[1-9][0-9]*\n$`).MatchString(got) {
				t.Errorf("Reloading sent %q", got)
			}
		})
	}
}

func TestNotifyOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := FromEnv()
	if n != nil {
		t.Fatalf("FromEnv without NOTIFY_SOCKET = %+v, want nil", n)
	}
	if err := n.Ready("x"); err != nil {
		t.Errorf("nil Notifier: %v", err)
	}
}

func TestNotifySocketGone(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "missing"))
	if err := FromEnv().Watchdog(); err == nil {
		t.Error("no error for a missing notify socket")
	}
}

func TestWatchdogInterval(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	tests := []struct {
		usec, pid string
		want      time.Duration
		err       bool
	}{
		{"", "", 0, false},
		{"10000000", "", 10 * time.Second, false},
		{"10000000", me, 10 * time.Second, false},
		{"10000000", "1", 0, false}, // another process's watchdog
		{"0", "", 0, true},
		{"ten", "", 0, true},
	}
	for _, tt := range tests {
		t.Setenv("WATCHDOG_USEC", tt.usec)
		t.Setenv("WATCHDOG_PID", tt.pid)
		got, err := WatchdogInterval()
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("USEC=%q PID=%q: %v, %v; want %v, error %t", tt.usec, tt.pid, got, err, tt.want, tt.err)
		}
		if diff := cmp.Diff([]string{"", ""}, []string{os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID")}); diff != "" {
			t.Errorf("variables left in the environment:\n%s", diff)
		}
	}
}

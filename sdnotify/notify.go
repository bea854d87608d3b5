package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends notifications to the service manager. A nil Notifier
// sends nothing.
type Notifier struct {
	addr *net.UnixAddr
}

// FromEnv returns a Notifier for $NOTIFY_SOCKET, or nil when it is unset,
// and removes the variable from the environment so that programs the
// daemon starts (hooks) do not inherit it.
func FromEnv() *Notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	os.Unsetenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	// A leading '@' is an abstract socket; the net package maps it.
	return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// Notify sends one notification made of the given "KEY=VALUE" lines.
func (n *Notifier) Notify(lines ...string) error {
	if n == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
		return fmt.Errorf("sd_notify %s: %w", lines[0], err)
	}
	return nil
}

// Ready says start-up (or a reload) is complete; status is shown by
// `systemctl status`.
func (n *Notifier) Ready(status string) error {
	return n.Notify("READY=1", "STATUS="+status)
}

// Reloading says a configuration reload started. MONOTONIC_USEC lets
// Type=notify-reload units match it with the READY=1 that ends it.
func (n *Notifier) Reloading() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Errorf("sd_notify: clock_gettime: %w", err)
	}
	return n.Notify("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(ts.Nano()/1e3, 10))
}

// Stopping says the daemon is shutting down.
func (n *Notifier) Stopping() error { return n.Notify("STOPPING=1") }

// Watchdog is the keep-alive ping.
func (n *Notifier) Watchdog() error { return n.Notify("WATCHDOG=1") }

// Status updates the status line without changing the state.
func (n *Notifier) Status(status string) error { return n.Notify("STATUS=" + status) }

// WatchdogInterval returns the watchdog timeout systemd enforces on this
// process ($WATCHDOG_USEC, when $WATCHDOG_PID is unset or names this
// process), or 0 when there is none. It removes both variables from the
// environment. Ping at half the interval.
func WatchdogInterval() (time.Duration, error) {
	usec, pid := os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID")
	os.Unsetenv("WATCHDOG_USEC")
	os.Unsetenv("WATCHDOG_PID")
	if usec == "" {
		return 0, nil
	}
	if pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, nil // meant for another process
	}
	n, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("WATCHDOG_USEC=%q is not a positive number of microseconds", usec)
	}
	return time.Duration(n) * time.Microsecond, nil
}

package tools

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// Uplinkd runs the uplinkd binary in a lab's router namespace.
type Uplinkd struct {
	Bin    string   // the uplinkd binary
	Lab    *lab.Lab // the lab; uplinkd runs in its Router namespace
	Dir    string   // configuration, status socket and log go here
	Config string   // the configuration without its [status] section
	// Want is the number of uplinks WaitBalanced waits for (default 2).
	Want int

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // cmd.Wait's result, once exited is closed
}

func (u *Uplinkd) Name() string { return "uplinkd" }

func (u *Uplinkd) socket() string  { return filepath.Join(u.Dir, "uplinkd.sock") }
func (u *Uplinkd) cfgPath() string { return filepath.Join(u.Dir, "uplinkd.toml") }

// LogPath is uplinkd's log file.
func (u *Uplinkd) LogPath() string { return filepath.Join(u.Dir, "uplinkd.log") }

// Check writes the configuration and runs `uplinkd check` on it.
func (u *Uplinkd) Check(ctx context.Context) error {
	cfg := u.Config + fmt.Sprintf("\n[status]\nsocket = %q\n", u.socket())
	if err := os.WriteFile(u.cfgPath(), []byte(cfg), 0o600); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, u.Bin, "check", "--config", u.cfgPath()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("uplinkd check: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Start checks the configuration and starts `uplinkd run`.
func (u *Uplinkd) Start(ctx context.Context) error {
	if err := u.Check(ctx); err != nil {
		return err
	}
	cmd, err := u.Lab.Start(ctx, lab.Router, u.LogPath(), u.Bin, "run", "--config", u.cfgPath())
	if err != nil {
		return err
	}
	u.cmd, u.exited = cmd, make(chan struct{})
	go func() {
		u.err = cmd.Wait()
		close(u.exited)
	}()
	return nil
}

// PID is the daemon's process id (`ip netns exec` executes uplinkd in its
// own place).
func (u *Uplinkd) PID() int { return u.cmd.Process.Pid }

// Status is the part of `uplinkd status --json` the bench reads.
type Status struct {
	Active  int `json:"active"`
	Uplinks []struct {
		Name      string `json:"name"`
		State     string `json:"state"`
		InBalance bool   `json:"in_balance"`
	} `json:"uplinks"`
	Netlink map[string]any `json:"netlink"`
}

// Status asks the running daemon for its state.
func (u *Uplinkd) Status(ctx context.Context) (Status, error) {
	var s Status
	select {
	case <-u.exited:
		return s, fmt.Errorf("uplinkd exited: %v; log: %s", u.err, tail(u.LogPath()))
	default:
	}
	out, err := exec.CommandContext(ctx, u.Bin, "status", "--json", "--socket", u.socket()).Output()
	if err != nil {
		return s, fmt.Errorf("uplinkd status: %w", err)
	}
	if err := json.Unmarshal(out, &s); err != nil {
		return s, fmt.Errorf("uplinkd status: %w", err)
	}
	return s, nil
}

// WaitActive waits until n uplinks are active.
func (u *Uplinkd) WaitActive(ctx context.Context, n int) error {
	return poll(ctx, 20*time.Millisecond, fmt.Sprintf("%d active uplinks", n), func() (bool, error) {
		s, err := u.Status(ctx)
		if err != nil {
			if strings.Contains(err.Error(), "exited") {
				return false, err
			}
			return false, err
		}
		return s.Active == n, nil
	})
}

// WaitBalanced waits until every configured uplink is active.
func (u *Uplinkd) WaitBalanced(ctx context.Context) error {
	return u.WaitActive(ctx, max(u.Want, 2))
}

// Reset stops uplinkd cleanly and starts it again: its probe windows
// start empty.
func (u *Uplinkd) Reset(ctx context.Context) error {
	if err := u.Stop(); err != nil {
		return err
	}
	return u.Start(ctx)
}

// Stop sends SIGTERM and waits for the clean stop.
func (u *Uplinkd) Stop() error {
	if u.cmd == nil {
		return nil
	}
	_ = u.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-u.exited:
		return u.err
	case <-time.After(60 * time.Second):
		_ = u.cmd.Process.Kill()
		<-u.exited
		return errors.New("uplinkd did not stop within 60s of SIGTERM")
	}
}

// LogMark is the current size of the log: LogFigure reads after it.
func (u *Uplinkd) LogMark() int64 {
	fi, err := os.Stat(u.LogPath())
	if err != nil {
		return 0
	}
	return fi.Size()
}

// SinceEvent returns the since_event figure of the first "routing updated"
// line uplinkd logged after mark: its own time from the event it acted on
// to the routes being written.
func (u *Uplinkd) SinceEvent(mark int64) (time.Duration, bool) {
	f, err := os.Open(u.LogPath())
	if err != nil {
		return 0, false
	}
	defer f.Close()
	if _, err := f.Seek(mark, io.SeekStart); err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if d, ok := parseSinceEvent(sc.Text()); ok {
			return d, true
		}
	}
	return 0, false
}

func parseSinceEvent(line string) (time.Duration, bool) {
	if !strings.Contains(line, `msg="routing updated"`) {
		return 0, false
	}
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "since_event="); ok {
			d, err := time.ParseDuration(v)
			return d, err == nil
		}
	}
	return 0, false
}

// tail returns the end of a log file, for error messages.
func tail(file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

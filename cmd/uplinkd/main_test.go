package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/config"
	"golang.org/x/sys/unix"
)

func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte(`
[probe]
interval = "soon"

[[uplink]]
name = "isp1"
interface = "eth1"
gateway = "2001:db8::1"
weight = 0
table = 100
colour = "blue"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open.toml")
	ref, err := os.ReadFile("../../etc/uplinkd.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(open, ref, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o666); err != nil {
		t.Fatal(err)
	}
	openErr := open + ": refused: mode 0666 lets any user rewrite"
	hookDir := filepath.Join(dir, "hooks")
	if err := os.Mkdir(hookDir, 0o755); err != nil {
		t.Fatal(err)
	}
	loose := filepath.Join(hookDir, "alert")
	if err := os.WriteFile(loose, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o777); err != nil {
		t.Fatal(err)
	}
	withHook := filepath.Join(dir, "hook.toml")
	minimal := "[[uplink]]\nname = \"isp1\"\ninterface = \"eth1\"\ngateway = \"198.51.100.1\"\ntable = 100\n"
	if err := os.WriteFile(withHook, fmt.Appendf(nil, "%s[hooks]\non_down = [%q]\n", minimal, loose), 0o600); err != nil {
		t.Fatal(err)
	}
	dual := filepath.Join(dir, "dual.toml")
	if err := os.WriteFile(dual, []byte("[probe]\ntargets6 = [\"2001:db8:ff::1\"]\n"+minimal+
		"gateway6 = \"fe80::1%eth1\"\nlan_prefix6 = \"2001:db8:100::/56\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{"no arguments", nil, 2, nil, []string{"usage:"}},
		{"unknown command", []string{"start"}, 2, nil, []string{`unknown command "start"`, "usage:"}},
		{"unknown flag", []string{"run", "--cfg", "x"}, 2, nil, []string{"flag provided but not defined: -cfg", "usage:"}},
		{"stray argument", []string{"check", "--config", bad, "extra"}, 2, nil, []string{`unexpected argument "extra"`}},
		{"version", []string{"version"}, 0, []string{"uplinkd dev"}, nil},
		{"help", []string{"help"}, 0, []string{"usage:"}, nil},
		{"check reference config", []string{"check", "--config", "../../etc/uplinkd.toml"}, 0, []string{"OK, 2 uplinks, IPv4 only"}, nil},
		{"check shows IPv6", []string{"check", "--config", dual}, 0, []string{"OK, 1 uplinks, 1 with IPv6",
			"isp1 IPv6: gateway6 fe80::1 on eth1, source6 auto, lan_prefix6 2001:db8:100::/56 (leaves through isp1 only), targets6 2001:db8:ff::1"}, nil},
		{"check reports every problem", []string{"check", "--config", bad}, 1, nil,
			[]string{bad + ":3: probe.interval", bad + ":8: uplink[0].gateway", bad + ":9: uplink[0].weight", "colour"}},
		{"unreadable file", []string{"check", "--config", filepath.Join(dir, "missing.toml")}, 1, nil, []string{"missing.toml"}},
		{"run refuses a bad config", []string{"run", "--config", bad}, 1, nil, []string{"uplink[0].weight"}},
		{"check refuses a world-writable config", []string{"check", "--config", open}, 1, nil, []string{openErr}},
		{"run refuses a world-writable config", []string{"run", "--config", open}, 1, nil, []string{openErr}},
		{"check reports a hook that would be refused", []string{"check", "--config", withHook}, 1, nil,
			[]string{withHook + ": hooks.on_down: the program would be refused: " + loose + " is writable by any user (mode 0777)"}},
		{"status when not running", []string{"status", "--socket", filepath.Join(dir, "uplinkd.sock")}, 3, nil,
			[]string{"uplinkd is not running (nothing listens on " + filepath.Join(dir, "uplinkd.sock") + ")"}},
		{"status --watch when not running", []string{"status", "--watch", "--json", "--socket", filepath.Join(dir, "x.sock")}, 3, nil,
			[]string{"uplinkd is not running"}},
		{"reload when not running", []string{"reload", "--socket", filepath.Join(dir, "uplinkd.sock")}, 3, nil,
			[]string{"uplinkd is not running"}},
		{"status stray argument", []string{"status", "isp1"}, 2, nil, []string{`unexpected argument "isp1"`}},
		{"reload takes no --json", []string{"reload", "--json"}, 2, nil, []string{"flag provided but not defined: -json"}},
		{"usage names the socket", []string{"help"}, 0, []string{"uplinkd status [--socket PATH] [--json] [--watch]", "/run/uplinkd/uplinkd.sock"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout.String(), stderr.String())
			}
			for _, want := range tt.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
			for _, want := range tt.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
		})
	}
}

// Colours are for terminals only: a pseudo-terminal is one, a pipe or a
// file is not.
func TestIsTerminal(t *testing.T) {
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	defer ptmx.Close()
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pts.Close()
	if !isTerminal(pts) {
		t.Error("a pseudo-terminal is not a terminal")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(w) {
		t.Error("a pipe is a terminal")
	}
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is a terminal")
	}
}

func TestLogger(t *testing.T) {
	var b bytes.Buffer
	log, level := newLogger(config.Log{Level: slog.LevelWarn, Format: "json"}, &b)
	log.Info("hidden")
	log.Warn("shown", "uplink", "isp1")
	level.Set(slog.LevelDebug) // as a reload does
	log.Debug("now shown")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("logged %q, want the warning and the debug line", lines)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec["msg"] != "shown" || rec["uplink"] != "isp1" {
		t.Errorf("JSON line %q: %v", lines[0], err)
	}
	b.Reset()
	log, _ = newLogger(config.Log{Level: slog.LevelInfo, Format: "text"}, &b)
	log.Info("hello", "uplink", "isp2")
	if !strings.Contains(b.String(), "level=INFO msg=hello uplink=isp2") {
		t.Errorf("text line %q", b.String())
	}
}

// A value holding a newline or an escape sequence (a reason quoting a
// kernel error, a hook's standard error) stays on its log line, escaped,
// in both formats: it cannot forge a log record or drive a terminal.
func TestLogInjection(t *testing.T) {
	evil := "no carrier\nlevel=INFO msg=\"all good\"\x1b[2J"
	for _, format := range []string{"text", "json"} {
		var b bytes.Buffer
		log, _ := newLogger(config.Log{Level: slog.LevelInfo, Format: format}, &b)
		log.Info("transition", "reason", evil, evil, "key")
		out := b.String()
		if strings.Count(out, "\n") != 1 || strings.ContainsRune(out, 0x1b) {
			t.Errorf("%s: %q", format, out)
		}
	}
}

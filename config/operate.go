package config

import (
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Limits of the operating tables.
const (
	maxHookTimeout = time.Hour
	maxMaxRunning  = 64
	// maxSocketPath is what fits in sockaddr_un.sun_path with its NUL.
	maxSocketPath = 107
)

func (v *validator) hooks(h *rawHooks) Hooks {
	out := Hooks{
		OnTransition: v.argv("hooks.on_transition", h.OnTransition),
		OnDown:       v.argv("hooks.on_down", h.OnDown),
		OnProbing:    v.argv("hooks.on_probing", h.OnProbing),
		OnDegraded:   v.argv("hooks.on_degraded", h.OnDegraded),
		OnActive:     v.argv("hooks.on_active", h.OnActive),
		OnPolicy:     v.argv("hooks.on_policy", h.OnPolicy),
	}
	if d, ok := v.duration("hooks.timeout", h.Timeout, defaultHookTimeout); ok && d > maxHookTimeout {
		v.errorf("hooks.timeout", "%q is longer than %v", h.Timeout.val, maxHookTimeout)
	} else {
		out.Timeout = d
	}
	if n, ok := v.integer("hooks.max_running", h.MaxRunning, defaultMaxRunning); ok {
		if n < 1 || n > maxMaxRunning {
			v.errorf("hooks.max_running", "%d is out of range (1..%d)", n, maxMaxRunning)
		}
		out.MaxRunning = int(n)
	}
	return out
}

// argv checks a hook command: the program as an absolute path, then its
// arguments. An empty list is no hook.
func (v *validator) argv(path string, o opt[[]string]) []string {
	args := v.stringList(path, o)
	if len(args) == 0 {
		return nil
	}
	switch {
	case !filepath.IsAbs(args[0]):
		// No shell and no $PATH search: what runs is exactly what is written.
		v.errorf(indexPath(path, 0), "%q is not an absolute path; hooks run without a shell or $PATH search, write the program's full path", args[0])
		return nil
	case strings.ContainsRune(strings.Join(args, ""), 0):
		v.errorf(path, "contains a NUL character")
		return nil
	}
	return args
}

func (v *validator) status(s *rawStatus) Status {
	path, ok := v.str("status.socket", s.Socket, DefaultSocket)
	switch {
	case !ok:
	case !filepath.IsAbs(path):
		v.errorf("status.socket", "%q is not an absolute path", path)
	case len(path) > maxSocketPath:
		v.errorf("status.socket", "%q is longer than a unix socket path may be (%d bytes)", path, maxSocketPath)
	case strings.HasSuffix(path, "/"):
		v.errorf("status.socket", "%q names a directory; write the socket's file name", path)
	}
	return Status{Socket: filepath.Clean(path)}
}

func (v *validator) metrics(m *rawMetrics) Metrics {
	s, ok := v.str("metrics.listen", m.Listen, "")
	if !ok || s == "" {
		return Metrics{}
	}
	if msg := listenProblem(s); msg != "" {
		v.errorf("metrics.listen", "%q: %s", s, msg)
	}
	return Metrics{Listen: s}
}

// listenProblem says why s is not "IP:port" or ":port".
func listenProblem(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return `write an address and port, such as "127.0.0.1:9273", "[::1]:9273" or ":9273"`
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "the port must be a number from 1 to 65535"
	}
	if host == "" {
		return ""
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return "the host must be an IP address (or empty, for every address), not a name"
	}
	return ""
}

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

func (v *validator) log(l *rawLog) Log {
	var out Log
	if s, ok := v.str("log.level", l.Level, defaultLogLevel); ok {
		level, known := logLevels[s]
		if !known {
			v.errorf("log.level", `%q: must be "debug", "info", "warn" or "error"`, s)
		}
		out.Level = level
	}
	if s, ok := v.str("log.format", l.Format, defaultLogFormat); ok {
		if s != "text" && s != "json" {
			v.errorf("log.format", `%q: must be "text" or "json"`, s)
		}
		out.Format = s
	}
	return out
}

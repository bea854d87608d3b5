package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/daemon"
	"github.com/uplinkd/uplinkd/hooks"
	"github.com/uplinkd/uplinkd/sdnotify"
	"github.com/uplinkd/uplinkd/status"
	"golang.org/x/sys/unix"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage:
  uplinkd run    [--config FILE]   run the daemon in the foreground (default FILE %[1]s);
                                   SIGTERM/SIGINT: clean stop, removes all its routing;
                                   SIGUSR2: exit (status 75) leaving all routing in place, for
                                   the next start to adopt (upgrades)
  uplinkd check  [--config FILE]   validate FILE: exit 0, or print every problem and exit 1
  uplinkd status [--socket PATH] [--json] [--watch]
                                   show the running daemon's state (default PATH %[2]s);
                                   --watch redraws on every change; exit 3 when not running
  uplinkd reload [--socket PATH]   make the running daemon re-read its configuration (as SIGHUP
                                   does) and print what changed; exit 1 when the file is refused
  uplinkd explain [--config FILE] [--from ADDR] [--iif IF] [--proto P] [--sport N] [--dport N]
                  [--mark M] [--uid U] DEST
                                   which uplink (or last resort) the kernel chooses for a new
                                   connection, the [[rule]] and policy that send it there, and
                                   any disagreement between the two (exit 1); run it in the
                                   router's network namespace
  uplinkd version                  print the version
`

// Exit statuses.
const (
	exitOK         = 0
	exitFailure    = 1
	exitUsage      = 2
	exitNotRunning = 3 // as in the LSB's "program is not running"
	// exitKept follows SIGUSR2: routing left in place for the next start.
	// EX_TEMPFAIL; the systemd unit restarts on it
	// (RestartForceExitStatus), which makes SIGUSR2 the upgrade path.
	exitKept = 75
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without os.Exit, returning the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return exitUsage
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("uplinkd "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	parse := func() bool {
		err := fs.Parse(args)
		if err == nil && fs.NArg() > 0 {
			err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
		}
		if err != nil {
			fmt.Fprintf(stderr, "uplinkd %s: %v\n", cmd, err)
			printUsage(stderr)
			return false
		}
		return true
	}
	switch cmd {
	case "run", "check":
		path := fs.String("config", config.DefaultPath, "configuration file")
		if !parse() {
			return exitUsage
		}
		cfg, err := config.Load(*path)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitFailure
		}
		if cmd == "check" {
			if !checkHooks(cfg.Hooks, *path, stderr) {
				return exitFailure
			}
			for _, w := range checkWarnings(cfg) {
				fmt.Fprintf(stdout, "%s: warning: %s\n", *path, w)
			}
			fmt.Fprintf(stdout, "%s: OK, %d uplinks%s\n", *path, len(cfg.Uplinks), ipv6Summary(cfg))
			for _, l := range ipv6Lines(cfg) {
				fmt.Fprintf(stdout, "  %s\n", l)
			}
			return exitOK
		}
		return runDaemon(cfg, *path, stderr)
	case "status":
		socket := fs.String("socket", config.DefaultSocket, "status socket")
		asJSON := fs.Bool("json", false, "print JSON")
		watch := fs.Bool("watch", false, "print again on every change")
		if !parse() {
			return exitUsage
		}
		return showStatus(*socket, *asJSON, *watch, stdout, stderr)
	case "reload":
		socket := fs.String("socket", config.DefaultSocket, "status socket")
		if !parse() {
			return exitUsage
		}
		return reload(*socket, stdout, stderr)
	case "explain":
		return explainCmd(fs, args, stdout, stderr)
	case "version", "--version", "-version":
		if !parse() {
			return exitUsage
		}
		fmt.Fprintf(stdout, "uplinkd %s\n", version)
		return exitOK
	case "help", "-h", "--help":
		printUsage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "uplinkd: unknown command %q\n", cmd)
		printUsage(stderr)
		return exitUsage
	}
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, usage, config.DefaultPath, config.DefaultSocket)
}

// newLogger logs to w as [log] says; the level can change on reload.
func newLogger(c config.Log, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.Set(c.Level)
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), level
	}
	return slog.New(slog.NewTextHandler(w, opts)), level
}

func runDaemon(cfg *config.Config, path string, stderr io.Writer) int {
	log, level := newLogger(cfg.Log, stderr)
	tuneGC(log)
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)

	notify := sdnotify.FromEnv()
	watchdog, err := sdnotify.WatchdogInterval()
	if err != nil {
		log.Warn("systemd watchdog disabled", "err", err)
	}
	log.Info("starting", "version", version, "config", path, "uplinks", len(cfg.Uplinks), "watchdog", watchdog)
	// For tests only: a small event socket buffer forces overruns.
	buf, _ := strconv.Atoi(os.Getenv("UPLINKD_TEST_EVENT_BUFFER"))
	d := daemon.New(cfg, log, daemon.Options{
		ConfigPath: path, Version: version, LogLevel: level,
		Notify: notify, Watchdog: watchdog, Reload: hup, Keep: usr2, EventBuffer: buf,
	})
	d.Ready = func() { log.Info("ready", "socket", cfg.Status.Socket) }
	if err := d.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("uplinkd failed", "err", err)
		return exitFailure
	}
	if d.Kept() {
		return exitKept
	}
	return exitOK
}

// checkHooks reports the hook programs the daemon would refuse to run.
func checkHooks(h config.Hooks, path string, stderr io.Writer) bool {
	ok := true
	for key, argv := range map[string][]string{
		"hooks.on_transition": h.OnTransition, "hooks.on_down": h.OnDown, "hooks.on_probing": h.OnProbing,
		"hooks.on_degraded": h.OnDegraded, "hooks.on_active": h.OnActive,
	} {
		if len(argv) == 0 {
			continue
		}
		if err := hooks.CheckProgram(argv[0]); err != nil {
			fmt.Fprintf(stderr, "%s: %s: the program would be refused: %v\n", path, key, err)
			ok = false
		}
	}
	return ok
}

// failed prints err and returns the exit status it calls for.
func failed(stderr io.Writer, err error) int {
	fmt.Fprintln(stderr, err)
	if errors.Is(err, status.ErrNotRunning) {
		return exitNotRunning
	}
	return exitFailure
}

func showStatus(socket string, asJSON, watch bool, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	tty := isTerminal(stdout)
	colour := tty && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
	show := func(s *status.Snapshot) error {
		var b bytes.Buffer
		switch {
		case asJSON && watch:
			// One object per line, for tools reading the stream.
			if err := json.NewEncoder(&b).Encode(s); err != nil {
				return err
			}
		case asJSON:
			enc := json.NewEncoder(&b)
			enc.SetIndent("", "  ")
			if err := enc.Encode(s); err != nil {
				return err
			}
		default:
			if watch && tty {
				b.WriteString("\x1b[H\x1b[2J") // home, clear screen
			}
			if err := status.Render(&b, s, colour, time.Now()); err != nil {
				return err
			}
			if watch && !tty {
				b.WriteByte('\n')
			}
		}
		_, err := stdout.Write(b.Bytes())
		return err
	}
	var err error
	if watch {
		err = status.Watch(ctx, socket, show)
	} else {
		var s *status.Snapshot
		if s, err = status.Get(ctx, socket); err == nil {
			err = show(s)
		}
	}
	if err != nil {
		return failed(stderr, err)
	}
	return exitOK
}

func reload(socket string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	res, err := status.Reload(ctx, socket)
	if err != nil {
		return failed(stderr, err)
	}
	if !res.OK {
		fmt.Fprintf(stderr, "reload refused; the running configuration stays in force:\n%s\n", res.Error)
		return exitFailure
	}
	if len(res.Changes) == 0 {
		fmt.Fprintln(stdout, "reloaded: no changes")
		return exitOK
	}
	fmt.Fprintf(stdout, "reloaded: %d changes\n  %s\n", len(res.Changes), strings.Join(res.Changes, "\n  "))
	return exitOK
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

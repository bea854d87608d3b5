package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/daemon"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage:
  uplinkd run   [--config FILE]   run the daemon in the foreground (default FILE %[1]s)
  uplinkd check [--config FILE]   validate FILE: exit 0, or print every problem and exit 1
  uplinkd version                 print the version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without os.Exit, returning the exit status: 0 success,
// 1 failure, 2 bad usage.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, config.DefaultPath)
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "run", "check":
		fs := flag.NewFlagSet("uplinkd "+cmd, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		path := fs.String("config", config.DefaultPath, "configuration file")
		if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
			if err == nil {
				err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
			}
			fmt.Fprintf(stderr, "uplinkd %s: %v\n", cmd, err)
			fmt.Fprintf(stderr, usage, config.DefaultPath)
			return 2
		}
		cfg, err := config.Load(*path)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if cmd == "check" {
			fmt.Fprintf(stdout, "%s: OK, %d uplinks\n", *path, len(cfg.Uplinks))
			return 0
		}
		return runDaemon(cfg, stderr)
	case "version", "--version", "-version":
		if len(args) > 0 {
			fmt.Fprintf(stderr, usage, config.DefaultPath)
			return 2
		}
		fmt.Fprintf(stdout, "uplinkd %s\n", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprintf(stdout, usage, config.DefaultPath)
		return 0
	default:
		fmt.Fprintf(stderr, "uplinkd: unknown command %q\n", cmd)
		fmt.Fprintf(stderr, usage, config.DefaultPath)
		return 2
	}
}

func runDaemon(cfg *config.Config, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Info("starting", "version", version, "uplinks", len(cfg.Uplinks))
	d := daemon.New(cfg, log)
	d.Ready = func() { log.Info("ready") }
	if err := d.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("uplinkd failed", "err", err)
		return 1
	}
	return 0
}

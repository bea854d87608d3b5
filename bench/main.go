package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/bench/internal/results"
	"github.com/uplinkd/uplinkd/bench/internal/scenario"
	"github.com/uplinkd/uplinkd/bench/internal/tools"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	repo := flag.String("repo", "..", "the repository's root")
	runs := flag.Int("runs", 5, "runs of each failover figure")
	out := flag.String("out", "results", "output directory (results.md, results.json, *.png)")
	bin := flag.String("uplinkd", "", "uplinkd binary (default REPO/bin/uplinkd)")
	seedFile := flag.String("seed", "", "the seed article (default REPO/../shared/seed/000_5d0123547500dfcb.txt)")
	writeSeed := flag.Bool("write-seed", false, "write the mapped seed scripts into REPO/bench/seed and exit")
	faults := flag.String("faults", "carrier,blackhole,arp", "failover faults to run")
	scale := flag.Bool("scale", false, "run the scale rows instead of the failover rows (make bench-scale)")
	uplinks := flag.String("scale-uplinks", "2,8,64,256", "scale: numbers of uplinks")
	routes := flag.String("scale-routes", "0,100000,1000000", "scale: routes in main")
	events := flag.Int("events", 20, "scale: carrier events per figure")
	idle := flag.Duration("idle", 60*time.Second, "scale: idle measurement period")
	storm := flag.Bool("storm", true, "scale: run the storm")
	idleUplinks := flag.String("idle-uplinks", "4,64", "scale: uplinks for the idle RSS and CPU rows")
	extra := flag.String("scale-config", "", "scale: file of extra TOML lines for [routing] (mark_mask, nexthop settings the other issues add)")
	readme := flag.String("readme", "", "README whose <!-- bench-results:start/end --> (or bench-scale) section gets the summary table (make bench: REPO/README.md)")
	render := flag.Bool("render", false, "write the Markdown, the README summary and the plots again from OUT's JSON files, and exit")
	keep := flag.Bool("keep", false, "keep the work directory (logs, configurations) and print its path")
	flag.Parse()

	if *bin == "" {
		*bin = filepath.Join(*repo, "bin", "uplinkd")
	}
	if *seedFile == "" {
		*seedFile = filepath.Join(*repo, "..", "shared", "seed", "000_5d0123547500dfcb.txt")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	scripts, err := tools.MapSeed(*seedFile)
	if err != nil {
		return err
	}
	seedDir := filepath.Join(*repo, "bench", "seed")
	if *writeSeed {
		return tools.WriteSeed(scripts, seedDir)
	}
	if *render {
		return rerender(*out, *scale, *readme)
	}
	if err := tools.CheckSeedCopies(scripts, seedDir); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root: it builds network namespaces (run `sudo make bench`)")
	}
	abs, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("uplinkd binary: %w (run make build)", err)
	}
	version, _ := exec.Command(abs, "version").Output()

	// The bench's own senders and receivers are the instrument: on a busy
	// machine they, and the tools they measure (which inherit it), run a
	// little ahead of other work.
	if err := unix.Setpriority(unix.PRIO_PROCESS, 0, scenario.Niceness); err != nil {
		log.Warn("cannot raise the bench's priority", "err", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	work, err := os.MkdirTemp("", "uplinkd-bench-")
	if err != nil {
		return err
	}
	if *keep {
		log.Info("work directory kept", "dir", work)
	} else {
		defer os.RemoveAll(work)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}

	start := time.Now()
	load0 := results.Load()
	res := &results.Results{Date: start, Machine: results.Describe(), Runs: *runs, Events: *events,
		Uplinkd: strings.TrimSpace(string(version))}
	name := "results"
	if *scale {
		name = "scale"
		cfg := scenario.ScaleConfig{
			Uplinkd: abs, Dir: work, Log: log, Events: *events, Idle: *idle,
			Uplinks: ints(*uplinks), Routes: ints(*routes), IdleUplinks: ints(*idleUplinks), Storm: *storm,
		}
		if *extra != "" {
			b, err := os.ReadFile(*extra)
			if err != nil {
				return err
			}
			cfg.Extra = string(b)
		}
		plots, err := scenario.RunScale(ctx, cfg, res)
		if err != nil {
			return err
		}
		if err := writeJSON(filepath.Join(*out, "scale-plots.json"), plots); err != nil {
			return err
		}
		if err := results.PlotScale(plots, *out); err != nil {
			return err
		}
	} else {
		var fs []scenario.Fault
		for _, f := range scenario.Faults {
			if strings.Contains(","+*faults+",", ","+f.Key+",") {
				fs = append(fs, f)
			}
		}
		cfg := scenario.FailoverConfig{Runs: *runs, Uplinkd: abs, Seed: scripts, Dir: work, Log: log, Faults: fs,
			UplinkdTimeout: 10 * time.Second, SeedTimeout: 30 * time.Second}
		res.Setup = scenario.FailoverSetup(cfg)
		timelines, err := scenario.RunFailover(ctx, cfg, res)
		if err != nil {
			return err
		}
		if fi, err := os.Stat(abs); err == nil {
			res.Add(results.Row{Section: "Cost", What: "binary size (uplinkd: static Go binary; seed: three bash scripts, plus bash, iproute2, ipcalc, ping, host)",
				Unit: results.KiB, Uplinkd: &results.Figure{Samples: []float64{float64(fi.Size()) / 1024}},
				Seed: &results.Figure{Samples: []float64{seedSize(scripts) / 1024}}, NoCompare: true})
		}
		if err := writeJSON(filepath.Join(*out, "timeline.json"), timelines); err != nil {
			return err
		}
		if err := results.PlotTimeline(timelines, filepath.Join(*out, "timeline.png")); err != nil {
			return err
		}
	}
	res.Machine.Load = load0 + " → " + results.Load()
	res.Machine.Minutes = time.Since(start).Minutes()
	if err := res.WriteJSON(filepath.Join(*out, name+".json")); err != nil {
		return err
	}
	if err := writeText(res, *out, name, *scale, *readme); err != nil {
		return err
	}
	if na := res.NotAhead(); len(na) > 0 {
		fmt.Println("\nRows where uplinkd is not ahead:")
		for _, r := range na {
			fmt.Println("  " + r)
		}
	}
	return nil
}

// writeText writes NAME.md, prints it, and puts the summary into the
// README.
func writeText(res *results.Results, out, name string, scale bool, readme string) error {
	md := res.Markdown()
	if err := os.WriteFile(filepath.Join(out, name+".md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Print(md)
	if readme != "" {
		summary := fmt.Sprintf("Measured %s on %s, %d cores (load %s); %s. Full table: [bench/results/%s.md](bench/results/%s.md).\n\n",
			res.Date.UTC().Format("2006-01-02"), res.Machine.CPU, res.Machine.Cores, res.Machine.Load, runsNote(res, scale), name, name)
		if err := results.UpdateReadme(readme, "bench-"+name, summary+res.SummaryTable()); err != nil {
			return err
		}
	}
	return nil
}

// rerender writes the text and the plots again from the JSON files a run
// left in out.
func rerender(out string, scale bool, readme string) error {
	name := "results"
	if scale {
		name = "scale"
	}
	var res results.Results
	if err := readJSON(filepath.Join(out, name+".json"), &res); err != nil {
		return err
	}
	if err := writeText(&res, out, name, scale, readme); err != nil {
		return err
	}
	if scale {
		var plots results.ScalePlots
		if err := readJSON(filepath.Join(out, "scale-plots.json"), &plots); err != nil {
			return err
		}
		return results.PlotScale(plots, out)
	}
	var tls []results.Timeline
	if err := readJSON(filepath.Join(out, "timeline.json"), &tls); err != nil {
		return err
	}
	return results.PlotTimeline(tls, filepath.Join(out, "timeline.png"))
}

func readJSON(file string, v any) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

func writeJSON(file string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(b, '\n'), 0o644)
}

func runsNote(res *results.Results, scale bool) string {
	if scale {
		return fmt.Sprintf("uplinkd alone; each event figure is the median (worst) of %d events", res.Events)
	}
	return fmt.Sprintf("median (worst) of %d runs per figure, both tools in the same run", res.Runs)
}

func seedSize(scripts map[string]string) float64 {
	n := 0
	for _, s := range scripts {
		n += len(s)
	}
	return float64(n)
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			out = append(out, n)
		}
	}
	return out
}

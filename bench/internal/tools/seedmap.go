package tools

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// The seed's scripts, by their position among the article's bash code
// blocks: the interfaces file (0), the if-up script (1), the if-down
// script (2), chmod (3), the init script (4), the ping daemon (5).
var seedScripts = []struct {
	block int
	name  string
}{
	{1, "enable_balanced_routing"},
	{2, "disable_balanced_routing"},
	{5, "check_isp_connectivity.sh"},
}

// SeedMapping lists every change made to the seed's script text, in
// order: the article's ISP gateways become the lab's, and the log and pid
// files move from /var/log and /var/run to the run's directory. Interface
// names (eth0 LAN, eth1 ISP1, eth2 ISP2) are the lab's already.
var SeedMapping = [][2]string{
	{"192.168.1.1", "198.51.100.1"},
	{"192.168.2.1", "203.0.113.1"},
	{`LOGFILE="/var/log/`, `LOGFILE="${SEED_RUN_DIR}/`},
	{`PIDFILE="/var/run/`, `PIDFILE="${SEED_RUN_DIR}/`},
}

var bashBlock = regexp.MustCompile("(?s)```bash\n(.*?)```")

// MapSeed extracts the seed's three scripts from the article and applies
// SeedMapping: file name -> script text.
func MapSeed(article string) (map[string]string, error) {
	b, err := os.ReadFile(article)
	if err != nil {
		return nil, fmt.Errorf("the seed (the peer) is missing: %w; the bench needs the article at ../shared/seed/ relative to the repository (or -seed FILE)", err)
	}
	blocks := bashBlock.FindAllStringSubmatch(string(b), -1)
	out := make(map[string]string)
	for _, s := range seedScripts {
		if s.block >= len(blocks) {
			return nil, fmt.Errorf("seed %s: %d bash blocks, want at least %d", article, len(blocks), s.block+1)
		}
		text := blocks[s.block][1]
		if !strings.HasPrefix(text, "#!/bin/bash") {
			return nil, fmt.Errorf("seed %s: block %d (%s) is not a bash script", article, s.block, s.name)
		}
		for _, m := range SeedMapping {
			text = strings.ReplaceAll(text, m[0], m[1])
		}
		out[s.name] = text
	}
	return out, nil
}

// CheckSeedCopies compares the mapped scripts with the copies kept in dir
// (bench/seed), so the committed copies cannot drift from the article.
func CheckSeedCopies(scripts map[string]string, dir string) error {
	for name, text := range scripts {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("mapped seed copy: %w (regenerate with -write-seed)", err)
		}
		if string(b) != text {
			return fmt.Errorf("mapped seed copy %s differs from the article with SeedMapping applied (regenerate with -write-seed)", filepath.Join(dir, name))
		}
	}
	return nil
}

// WriteSeed writes the mapped scripts into dir, executable.
func WriteSeed(scripts map[string]string, dir string) error {
	for name, text := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o755); err != nil {
			return err
		}
	}
	return nil
}

package results

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

// TestPlots draws every plot from made-up figures, including ones a
// timeout left without a value, and checks that PNG files come out.
func TestPlots(t *testing.T) {
	dir := t.TempDir()
	tl := []Timeline{
		{Tool: "uplinkd", Start: -1, Bin: 0.01, Repair: 2, Counts: map[string][]int{"isp1": {80, 80, 320}, "isp2": {240, 0, 0}}},
		{Tool: "seed", Start: -1, Bin: 0.01, Repair: 9, Counts: map[string][]int{"isp2": {320, 0, 0}}},
	}
	if err := PlotTimeline(tl, filepath.Join(dir, "timeline.png")); err != nil {
		t.Fatal(err)
	}
	sp := ScalePlots{
		ByUplinks: []ScalePoint{{X: 2, Median: 1, P95: 2, Logged: 1.5}, {X: 64, Median: 5, P95: math.Inf(1), Logged: 8}, {X: 8, Median: 0, P95: 3, Logged: 2}},
		ByRoutes:  []ScalePoint{{X: 0, Median: 1, P95: 2, Logged: 1}, {X: 1e6, Median: 1.4, P95: 60, Logged: 1000}},
	}
	if err := PlotScale(sp, dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"timeline.png", "scale-uplinks.png", "scale-routes.png"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || len(b) < 8 || string(b[1:4]) != "PNG" {
			t.Errorf("%s: not a PNG (%v)", f, err)
		}
	}
}

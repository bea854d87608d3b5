package results

import (
	"math"
	"strings"
	"testing"
)

func TestFigure(t *testing.T) {
	f := &Figure{}
	for _, v := range []float64{5, 1, 3, 2, 4} {
		f.Add(v)
	}
	if f.Median() != 3 || f.Worst() != 5 || f.Quantile(0.95) != 5 {
		t.Errorf("median %v worst %v p95 %v", f.Median(), f.Worst(), f.Quantile(0.95))
	}
	f.Miss(10)
	f.Miss(10)
	if f.Median() != 4 || !math.IsInf(f.Worst(), 1) {
		t.Errorf("with two misses: median %v worst %v", f.Median(), f.Worst())
	}
	if c := f.cell(Millis, true); c != "> 10.0 ms" {
		t.Errorf("worst cell %q", c)
	}
	if !math.IsNaN(NA("x").Median()) || !math.IsNaN((&Figure{}).Median()) {
		t.Error("n/a or empty figure has a median")
	}
}

func TestMarkdownAndNotAhead(t *testing.T) {
	r := &Results{Runs: 3}
	fig := func(v ...float64) *Figure { return &Figure{Samples: v} }
	r.Add(Row{Section: "A", What: "fast", Unit: Millis, Uplinkd: fig(1, 2, 3), Seed: fig(2000, 3000, 4000)})
	r.Add(Row{Section: "A", What: "slow", Unit: Millis, Uplinkd: fig(5), Seed: fig(4)})
	r.Add(Row{Section: "B", What: "tie", Unit: Flows, Uplinkd: fig(0), Seed: fig(0)})
	r.Add(Row{Section: "B", What: "raw", Unit: Flows, Uplinkd: fig(9), Seed: fig(1), NoCompare: true})
	r.Add(Row{Section: "B", What: "scale", Unit: Millis, Uplinkd: fig(1), Seed: NA("two ISPs only")})
	md := r.Markdown()
	for _, want := range []string{"| fast |  | 2.00 ms | 3.00 ms | 3.00 s | 4.00 s | 1500× |", "### B", "n/a (two ISPs only)"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	na := r.NotAhead()
	if len(na) != 2 || !strings.Contains(na[0], "slow: behind") || !strings.Contains(na[1], "tie: tie") {
		t.Errorf("NotAhead = %q", na)
	}
}

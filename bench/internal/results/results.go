package results

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// Units of figures.
const (
	Millis = "ms"
	Flows  = "flows"
	MiB    = "MiB"
	KiB    = "KiB"
	Pct    = "% of a core"
	Secs   = "s"
)

// Figure is one tool's value of one row: the samples of the runs that gave
// one, and the runs that gave none within Timeout.
type Figure struct {
	NA      string    `json:"na,omitempty"` // why the row does not apply
	Samples []float64 `json:"samples,omitempty"`
	Missing int       `json:"missing,omitempty"` // runs without a value within Timeout
	Timeout float64   `json:"timeout,omitempty"` // in the row's unit
}

// NA is a figure that does not apply, with the reason.
func NA(reason string) *Figure { return &Figure{NA: reason} }

// Add records one run's value.
func (f *Figure) Add(v float64) { f.Samples = append(f.Samples, v) }

// Miss records a run that gave no value within timeout.
func (f *Figure) Miss(timeout float64) { f.Missing++; f.Timeout = timeout }

// Median is the median over every run, a missing value counting as
// larger than any sample; NaN when there is none.
func (f *Figure) Median() float64 { return f.Quantile(0.5) }

// Quantile is the q-quantile (nearest rank) over every run, missing values
// being +Inf.
func (f *Figure) Quantile(q float64) float64 {
	n := len(f.Samples) + f.Missing
	if f.NA != "" || n == 0 {
		return math.NaN()
	}
	s := slices.Clone(f.Samples)
	for range f.Missing {
		s = append(s, math.Inf(1))
	}
	slices.Sort(s)
	i := int(math.Ceil(q*float64(n))) - 1
	return s[max(0, min(i, n-1))]
}

// Worst is the largest value (+Inf when a run gave none).
func (f *Figure) Worst() float64 { return f.Quantile(1) }

// Row is one line of the table.
type Row struct {
	Section string  `json:"section"`
	What    string  `json:"what"`
	Unit    string  `json:"unit"`
	Ideal   string  `json:"ideal,omitempty"`
	Uplinkd *Figure `json:"uplinkd"`
	Seed    *Figure `json:"seed"`
	// HigherBetter inverts the comparison (none of the current rows).
	HigherBetter bool `json:"higher_better,omitempty"`
	// NoCompare marks rows where lower is not better (raw counts shown
	// beside their ideal); NotAhead skips them.
	NoCompare bool `json:"no_compare,omitempty"`
	// Summary rows also go into the README's table.
	Summary bool   `json:"summary,omitempty"`
	Note    string `json:"note,omitempty"`
}

// Machine describes where the bench ran.
type Machine struct {
	CPU      string  `json:"cpu"`
	Cores    int     `json:"cores"`
	MemoryMB int     `json:"memory_mb"`
	Kernel   string  `json:"kernel"`
	Go       string  `json:"go"`
	Load     string  `json:"load"` // load averages at the start and end
	Busy     string  `json:"busy,omitempty"`
	Minutes  float64 `json:"minutes"`
}

// Results is everything one bench run measured.
type Results struct {
	Date    time.Time `json:"date"`
	Machine Machine   `json:"machine"`
	Runs    int       `json:"runs"`    // runs per failover figure
	Events  int       `json:"events"`  // events per scale figure
	Uplinkd string    `json:"uplinkd"` // version of the binary
	Setup   []string  `json:"setup"`   // conditions, one per line
	Rows    []Row     `json:"rows"`
	Notes   []string  `json:"notes,omitempty"`
}

// Add appends a row.
func (r *Results) Add(row Row) { r.Rows = append(r.Rows, row) }

// WriteJSON writes the results to file.
func (r *Results) WriteJSON(file string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	// NaN and Inf never reach JSON: figures keep samples and counts only.
	return os.WriteFile(file, append(b, '\n'), 0o644)
}

// Markdown renders the results as a Markdown document.
func (r *Results) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# uplinkd bench results\n\n")
	fmt.Fprintf(&b, "Run on %s: %s, %d cores, %d MiB, kernel %s, %s; load %s; %.1f minutes.",
		r.Date.UTC().Format("2006-01-02 15:04 UTC"), r.Machine.CPU, r.Machine.Cores, r.Machine.MemoryMB,
		r.Machine.Kernel, r.Machine.Go, r.Machine.Load, r.Machine.Minutes)
	if r.Machine.Busy != "" {
		fmt.Fprintf(&b, " %s", r.Machine.Busy)
	}
	fmt.Fprintf(&b, "\nuplinkd %s.\n\n", r.Uplinkd)
	for _, s := range r.Setup {
		fmt.Fprintf(&b, "* %s\n", s)
	}
	b.WriteString("\n")
	section := ""
	for _, row := range r.Rows {
		if row.Section != section {
			section = row.Section
			fmt.Fprintf(&b, "\n### %s\n\n", section)
			b.WriteString("| figure | ideal | uplinkd median | uplinkd worst | seed median | seed worst | seed / uplinkd |\n")
			b.WriteString("|---|---|--:|--:|--:|--:|--:|\n")
		}
		what := row.What
		if row.Note != "" {
			what += " (" + row.Note + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", what, row.Ideal,
			row.Uplinkd.cell(row.Unit, false), row.Uplinkd.cell(row.Unit, true),
			row.Seed.cell(row.Unit, false), row.Seed.cell(row.Unit, true), ratio(row))
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "* %s\n", n)
		}
	}
	return b.String()
}

func (f *Figure) cell(unit string, worst bool) string {
	if f == nil {
		return ""
	}
	if f.NA != "" {
		if worst {
			return ""
		}
		return "n/a (" + f.NA + ")"
	}
	v := f.Median()
	if worst {
		v = f.Worst()
	}
	if math.IsNaN(v) {
		return "—"
	}
	if math.IsInf(v, 1) {
		return "> " + format(f.Timeout, unit)
	}
	return format(v, unit)
}

func format(v float64, unit string) string {
	switch unit {
	case Millis:
		switch {
		case v >= 1000:
			return fmt.Sprintf("%.2f s", v/1000)
		case v >= 100:
			return fmt.Sprintf("%.0f ms", v)
		case v >= 10:
			return fmt.Sprintf("%.1f ms", v)
		default:
			return fmt.Sprintf("%.2f ms", v)
		}
	case Flows:
		return fmt.Sprintf("%.0f", v)
	case MiB:
		return fmt.Sprintf("%.1f MiB", v)
	case KiB:
		return fmt.Sprintf("%.0f KiB", v)
	case Pct:
		return fmt.Sprintf("%.2f %%", v)
	case Secs:
		return fmt.Sprintf("%.2f s", v)
	}
	return fmt.Sprintf("%g %s", v, unit)
}

// ratio is the seed's median over uplinkd's, for time rows.
func ratio(row Row) string {
	if row.Unit != Millis || row.Uplinkd == nil || row.Seed == nil || row.Uplinkd.NA != "" || row.Seed.NA != "" {
		return ""
	}
	u, s := row.Uplinkd.Median(), row.Seed.Median()
	if math.IsNaN(u) || math.IsNaN(s) || u <= 0 {
		return ""
	}
	if math.IsInf(s, 1) && !math.IsInf(u, 1) {
		return "> " + fmt.Sprintf("%.0f×", row.Seed.Timeout/u)
	}
	if math.IsInf(s, 1) || math.IsInf(u, 1) {
		return ""
	}
	if s/u < 10 {
		return fmt.Sprintf("%.1f×", s/u)
	}
	return fmt.Sprintf("%.0f×", s/u)
}

// NotAhead lists the rows where uplinkd's median is not better than the
// seed's, for the closing note.
func (r *Results) NotAhead() []string {
	var out []string
	for _, row := range r.Rows {
		if row.NoCompare || row.Uplinkd == nil || row.Seed == nil || row.Uplinkd.NA != "" || row.Seed.NA != "" {
			continue
		}
		u, s := row.Uplinkd.Median(), row.Seed.Median()
		if math.IsNaN(u) || math.IsNaN(s) {
			continue
		}
		if (!row.HigherBetter && u >= s) || (row.HigherBetter && u <= s) {
			how := "behind"
			if u == s {
				how = "tie"
			}
			out = append(out, fmt.Sprintf("%s: %s: %s (uplinkd %s, seed %s)", row.Section, row.What, how,
				row.Uplinkd.cell(row.Unit, false), row.Seed.cell(row.Unit, false)))
		}
	}
	return out
}

// SummaryTable renders the summary rows as one compact Markdown table.
// When no summary row has a seed figure, the seed's columns are left out.
func (r *Results) SummaryTable() string {
	var b strings.Builder
	seed := false
	for _, row := range r.Rows {
		seed = seed || row.Summary && row.Seed != nil && row.Seed.NA == ""
	}
	if seed {
		b.WriteString("| figure | uplinkd median (worst) | seed median (worst) | seed ÷ uplinkd |\n|---|--:|--:|--:|\n")
	} else {
		b.WriteString("| figure | uplinkd median (worst) |\n|---|--:|\n")
	}
	for _, row := range r.Rows {
		if !row.Summary {
			continue
		}
		what := row.What
		if row.Ideal != "" {
			what += " (ideal " + row.Ideal + ")"
		}
		if seed {
			fmt.Fprintf(&b, "| %s: %s | %s | %s | %s |\n", row.Section, what, both(row.Uplinkd, row.Unit), both(row.Seed, row.Unit), ratio(row))
		} else {
			fmt.Fprintf(&b, "| %s: %s | %s |\n", row.Section, what, both(row.Uplinkd, row.Unit))
		}
	}
	return b.String()
}

func both(f *Figure, unit string) string {
	if f == nil {
		return ""
	}
	if f.NA != "" {
		return f.cell(unit, false)
	}
	return f.cell(unit, false) + " (" + f.cell(unit, true) + ")"
}

// UpdateReadme replaces what lies between the lines "<!-- name:start -->"
// and "<!-- name:end -->" of file with text.
func UpdateReadme(file, name, text string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	start, end := "<!-- "+name+":start -->\n", "<!-- "+name+":end -->"
	i, j := strings.Index(string(b), start), strings.Index(string(b), end)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %q ... %q section", file, strings.TrimSpace(start), end)
	}
	out := string(b[:i+len(start)]) + text + string(b[j:])
	return os.WriteFile(file, []byte(out), 0o644)
}

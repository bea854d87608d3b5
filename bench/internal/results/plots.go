package results

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Timeline is the LAN packets per bin per ISP of one tool across one fault
// and its repair.
type Timeline struct {
	Tool   string
	Start  float64 // seconds from the fault to the first bin
	Bin    float64 // seconds
	Repair float64 // seconds from the fault to the repair
	Counts map[string][]int
}

var palette = map[string]color.Color{
	"uplinkd isp1": color.RGBA{R: 31, G: 119, B: 180, A: 255},
	"uplinkd isp2": color.RGBA{R: 255, G: 127, B: 14, A: 255},
	"seed isp1":    color.RGBA{R: 44, G: 160, B: 44, A: 255},
	"seed isp2":    color.RGBA{R: 214, G: 39, B: 40, A: 255},
}

// PlotTimeline draws the timelines on the same axes.
func PlotTimeline(tls []Timeline, file string) error {
	if len(tls) == 0 {
		return nil
	}
	p := plot.New()
	p.Title.Text = "32 LAN flows, packets per 10 ms per ISP: ISP2 blackholed at 0 s, then repaired (first run of each tool)"
	p.X.Label.Text = "seconds since the blackhole"
	p.Y.Label.Text = "packets / 10 ms (32 flows × 1 per ms)"
	p.Legend.Top = true
	for _, tl := range tls {
		for _, isp := range []string{"isp1", "isp2"} {
			counts := tl.Counts[isp]
			pts := make(plotter.XYs, len(counts))
			for i, c := range counts {
				pts[i].X = tl.Start + float64(i)*tl.Bin
				pts[i].Y = float64(c)
			}
			l, err := plotter.NewLine(pts)
			if err != nil {
				return err
			}
			name := tl.Tool + " " + isp
			l.Color = palette[name]
			l.Width = vg.Points(0.7)
			if tl.Tool == "seed" {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
			}
			p.Add(l)
			p.Legend.Add(name, l)
		}
		// The repair, as a vertical line in the tool's ISP2 colour.
		top := 32.0 * 10 * 1.45
		mark, err := plotter.NewLine(plotter.XYs{{X: tl.Repair, Y: 0}, {X: tl.Repair, Y: top}})
		if err != nil {
			return err
		}
		mark.Color = palette[tl.Tool+" isp2"]
		mark.Width = vg.Points(1.5)
		mark.Dashes = []vg.Length{vg.Points(1), vg.Points(3)}
		p.Add(mark)
		p.Legend.Add(fmt.Sprintf("%s: ISP2 repaired (%.1f s)", tl.Tool, tl.Repair), mark)
	}
	// Room above the data for the legend.
	p.Y.Min, p.Y.Max = 0, 32*10*1.45
	return p.Save(11*vg.Inch, 5*vg.Inch, file)
}

// ScalePoint is one figure of a scale plot.
type ScalePoint struct {
	X      float64
	Median float64 // ms
	P95    float64 // ms
	Logged float64 // ms: uplinkd's own since_event of a carrier return, median
}

// ScalePlots are the points of the scale plots.
type ScalePlots struct {
	ByUplinks []ScalePoint
	ByRoutes  []ScalePoint
}

// PlotScale draws event-to-routes against the number of uplinks and
// against the size of main.
func PlotScale(sp ScalePlots, dir string) error {
	if err := plotScale(sp.ByUplinks, "uplinkd: carrier return → last routing change, by number of uplinks", "uplinks", filepath.Join(dir, "scale-uplinks.png")); err != nil {
		return err
	}
	return plotScale(sp.ByRoutes, "uplinkd: carrier return → last routing change, by routes in main (2 uplinks)", "routes in main (next hops on a non-uplink interface)", filepath.Join(dir, "scale-routes.png"))
}

func plotScale(pts []ScalePoint, title, xlabel, file string) error {
	if len(pts) == 0 {
		return nil
	}
	// A figure with runs that timed out has no finite median to draw.
	bad := func(v float64) bool { return math.IsInf(v, 0) || math.IsNaN(v) }
	pts = slices.DeleteFunc(slices.Clone(pts), func(p ScalePoint) bool { return bad(p.Median) || bad(p.P95) || bad(p.Logged) })
	if len(pts) == 0 {
		return nil
	}
	slices.SortFunc(pts, func(a, b ScalePoint) int { return int(a.X - b.X) })
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = "ms (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	for i, which := range []string{"median", "p95", "uplinkd's log: since_event of a return, median"} {
		xy := make(plotter.XYs, len(pts))
		var labels []string
		for j, pt := range pts {
			xy[j].X = float64(j)
			// The log scale needs positive values.
			xy[j].Y = max(0.01, []float64{pt.Median, pt.P95, pt.Logged}[i])
			labels = append(labels, fmt.Sprintf("%.0f", pt.X))
		}
		l, s, err := plotter.NewLinePoints(xy)
		if err != nil {
			return err
		}
		c := []color.Color{palette["uplinkd isp1"], palette["uplinkd isp2"], palette["seed isp1"]}[i]
		l.Color, s.Color = c, c
		s.Shape = draw.CircleGlyph{}
		p.Add(l, s)
		p.Legend.Add(which, l, s)
		p.NominalX(labels...)
	}
	return p.Save(7*vg.Inch, 4*vg.Inch, file)
}

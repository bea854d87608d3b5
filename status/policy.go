package status

import (
	"fmt"
	"strconv"
	"strings"
)

// policies prints the policies, unless the only one is the built-in
// default policy: one row each with the tier in use, its members and
// their shares, or the last resort in effect.
func (p *printer) policies(pols []Policy) {
	if len(pols) == 0 || len(pols) == 1 && pols[0].Builtin {
		return
	}
	p.linef("")
	rows := [][]string{{"POLICY", "TABLE", "TIERS", "IN USE", "UPLINKS"}}
	for _, pol := range pols {
		tiers := make([]string, len(pol.Tiers))
		for i, t := range pol.Tiers {
			tiers[i] = strings.Join(t, "+")
		}
		use, members := "last resort "+pol.LastResort, "-"
		if pol.Tier > 0 {
			use = "tier " + strconv.Itoa(pol.Tier)
			ms := make([]string, len(pol.Members))
			for i, m := range pol.Members {
				ms[i] = fmt.Sprintf("%s %.0f%%", m.Name, 100*m.Share)
			}
			members = strings.Join(ms, ", ")
		}
		rows = append(rows, []string{pol.Name, strconv.Itoa(pol.Table), strings.Join(tiers, " > "), use, members})
	}
	p.table(rows, func(row, col int, cell string) string {
		switch {
		case row == 0:
			return p.paint(bold, cell)
		case col == 3 && strings.HasPrefix(cell, "last resort"):
			return p.paint(stateColour["down"], cell)
		case col == 3 && !strings.HasPrefix(cell, "tier 1 "):
			return p.paint(stateColour["degraded"], cell)
		}
		return cell
	})
}

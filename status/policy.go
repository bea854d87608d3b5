package status

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// policies prints the policies, unless the only one is the built-in
// default policy: one row each with the tier in use, its members and
// their shares, or the last resort in effect. With IPv6, one row per
// policy and family, with a FAMILY column.
func (p *printer) policies(pols []Policy) {
	dual := slices.ContainsFunc(pols, func(pol Policy) bool { return pol.Family == FamilyIPv6 })
	if len(pols) == 0 || !slices.ContainsFunc(pols, func(pol Policy) bool { return !pol.Builtin }) {
		return
	}
	p.linef("")
	rows := [][]string{{"POLICY", "TABLE", "TIERS", "IN USE", "UPLINKS"}}
	if dual {
		rows[0] = slices.Insert(rows[0], 1, "FAMILY")
	}
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
		row := []string{pol.Name, strconv.Itoa(pol.Table), strings.Join(tiers, " > "), use, members}
		if dual {
			row = slices.Insert(row, 1, familyName(pol.Family))
		}
		rows = append(rows, row)
	}
	useCol := 3
	if dual {
		useCol = 4
	}
	p.table(rows, func(row, col int, cell string) string {
		switch {
		case row == 0:
			return p.paint(bold, cell)
		case col == useCol && strings.HasPrefix(cell, "last resort"):
			return p.paint(stateColour["down"], cell)
		case col == useCol && !strings.HasPrefix(cell, "tier 1 "):
			return p.paint(stateColour["degraded"], cell)
		}
		return cell
	})
}

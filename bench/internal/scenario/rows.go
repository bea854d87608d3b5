package scenario

import (
	"fmt"

	"github.com/uplinkd/uplinkd/bench/internal/results"
)

// addFailoverRows turns both tools' failover figures into table rows.
func addFailoverRows(cfg FailoverConfig, res *results.Results, up, seed figures) {
	for _, f := range cfg.Faults {
		k := f.Key
		sec := "Failover: ISP2 " + f.Name
		seedNote := ""
		if k == "carrier" {
			seedNote = "the seed cannot see carrier; its ping check notices the dead link"
		}
		ideal := fmt.Sprintf("those on ISP2 before: uplinkd %.0f, seed %.0f (medians)", up.get(k+"/ideal").Median(), seed.get(k+"/ideal").Median())
		if k == "carrier" && up.get(k+"/kernel").Median() > 0 {
			seedNote = "uplinkd: the kernel deletes its nexthop objects with the carrier, unannounced, so the link message is the change; " + seedNote
		}
		rows := []results.Row{
			{What: "fault → first routing change", Unit: results.Millis, Uplinkd: up.get(k + "/route"), Seed: seed.get(k + "/route"), Note: seedNote, Summary: true},
			{What: "fault → last routing change of the burst (300 ms quiet after it)", Unit: results.Millis, Uplinkd: up.get(k + "/settled"), Seed: seed.get(k + "/settled")},
			{What: "uplinkd's log: since_event of its first update", Unit: results.Millis, Uplinkd: up.get(k + "/log"),
				Seed: results.NA("no such log"), NoCompare: true, Note: "its own clock, from the event it acted on"},
			{What: "longest gap of 32 LAN flows (UDP every 1 ms), fault to repair", Unit: results.Millis, Uplinkd: up.get(k + "/gap"), Seed: seed.get(k + "/gap"), Summary: true},
			{What: "control flow from ISP1's address: longest gap (noise floor)", Unit: results.Millis, Uplinkd: up.get(k + "/control"), Seed: seed.get(k + "/control"), NoCompare: true},
			{What: "LAN flows moved", Unit: results.Flows, Ideal: ideal, Uplinkd: up.get(k + "/moved"), Seed: seed.get(k + "/moved"), NoCompare: true},
			{What: "LAN flows off the ideal (moved from ISP1, or not moved / dead on ISP2)", Unit: results.Flows, Ideal: "0", Uplinkd: up.get(k + "/off"), Seed: seed.get(k + "/off"), Summary: true},
		}
		for _, r := range rows {
			r.Section = sec
			res.Add(r)
		}
		sec = "Recovery: ISP2 " + f.Name + " repaired"
		rows = []results.Row{
			{What: "repair → first routing change", Unit: results.Millis, Uplinkd: up.get(k + "/rroute"), Seed: seed.get(k + "/rroute"), Summary: true},
			{What: "repair → last routing change of the burst", Unit: results.Millis, Uplinkd: up.get(k + "/rsettled"), Seed: seed.get(k + "/rsettled")},
			{What: "new connections use ISP2 again (a fresh source port every 5 ms)", Unit: results.Millis, Uplinkd: up.get(k + "/newconn"), Seed: seed.get(k + "/newconn"), Summary: true},
			{What: "LAN flows moved", Unit: results.Flows, Ideal: "0", Uplinkd: up.get(k + "/rmoved"), Seed: seed.get(k + "/rmoved"), Summary: true},
			{What: "longest gap of 32 LAN flows, repair to 1.5 s after the change", Unit: results.Millis, Uplinkd: up.get(k + "/rgap"), Seed: seed.get(k + "/rgap")},
		}
		for _, r := range rows {
			r.Section = sec
			res.Add(r)
		}
	}
}

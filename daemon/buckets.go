package daemon

import "github.com/uplinkd/uplinkd/netops"

// bucketReader reads a resilient group's buckets (*netops.NexthopConn).
type bucketReader interface {
	BucketCounts(id uint32) (map[uint32]int, error)
}

// bucketShares returns each uplink's share of family fam's resilient
// group's buckets as the kernel has them now: the real split of new
// flows, which lags the weights while the buckets a returning uplink is
// owed stay busy (until idle_timer or unbalanced_timer). nil with another
// balancer, or when the group cannot be read.
func (d *Daemon) bucketShares(fam family) map[string]float64 {
	b := d.balancer.Load()
	if b == nil || *b != netops.Resilient || d.rec == nil {
		return nil
	}
	br, ok := d.rec.Nexthops().(bucketReader)
	if !ok {
		return nil
	}
	ids := netops.NexthopIDsFor(d.cfg.Routing.NexthopIDBase, fam)
	counts, err := br.BucketCounts(ids.Group)
	if err != nil {
		d.log.Debug("reading the resilient group's buckets", "family", fam.String(), "err", err)
		return nil
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	out := make(map[string]float64, len(d.uplinks))
	for _, u := range d.familyEntities(fam) {
		s := d.slotOf(u.cfg.Name)
		if total > 0 {
			out[u.cfg.Name] = float64(counts[ids.Uplink(s)]+counts[ids.Twin(s)]) / float64(total)
		} else {
			out[u.cfg.Name] = 0
		}
	}
	return out
}

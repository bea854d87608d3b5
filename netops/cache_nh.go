package netops

import "slices"

// cachedNexthops returns the cached objects among ids, and the IDs that
// must be fetched.
func (c *ownCache) cachedNexthops(ids []uint32) (have []NexthopObject, fetch []uint32) {
	for _, id := range ids {
		n, ok := c.nexthops[id]
		switch {
		case !c.on || !ok:
			fetch = append(fetch, id)
		case n.ID != 0:
			have = append(have, n)
		}
	}
	return have, fetch
}

// listedNexthops enters the objects a listing found among ids (all of
// them at a full listing, every ID then).
func (c *ownCache) listedNexthops(list []NexthopObject, ids []uint32, all bool, protocol int) {
	if all {
		c.nexthops = make(map[uint32]NexthopObject)
		clear(c.namedNH)
	}
	for _, id := range ids {
		c.nexthops[id] = NexthopObject{}
		delete(c.namedNH, id)
	}
	for _, n := range list {
		if all && n.Protocol != protocol && !slices.Contains(ids, n.ID) {
			continue // a foreign object: not of interest
		}
		c.nexthops[n.ID] = n
	}
	if all {
		return // the tables are listed afresh too
	}
	// The kernel deleted the routes through an object that is gone.
	for _, id := range ids {
		if c.nexthops[id].ID == 0 {
			c.dropVia(id)
		}
	}
}

// wroteNexthop enters n, just created or replaced, in the form a listing
// gives (timers in clock ticks).
func (c *ownCache) wroteNexthop(n NexthopObject) {
	if !c.on {
		return
	}
	b, err := marshalNexthop(n)
	if err == nil {
		n, err = parseNexthop(b)
	}
	if err != nil {
		delete(c.nexthops, n.ID)
		return
	}
	c.nexthops[n.ID] = n
}

// deletedNexthop records that id is gone, and with it the routes through
// it: their tables are read again.
func (c *ownCache) deletedNexthop(id uint32) {
	if !c.on {
		return
	}
	c.nexthops[id] = NexthopObject{}
	c.dropVia(id)
}

// dirtyNexthop makes id dirty after a failed write.
func (c *ownCache) dirtyNexthop(id uint32) {
	delete(c.nexthops, id)
	if c.namedNH != nil {
		c.namedNH[id] = true
	}
	c.dropVia(id)
}

package status

// Pinning says whether connections are pinned to their uplink, and what
// pinning did.
type Pinning struct {
	On bool `json:"on"`
	// Reason says why pinning is off ("" when on): mark_mask = 0, or the
	// kernel has no nf_tables.
	Reason string `json:"reason,omitempty"`
	Mask   string `json:"mask,omitempty"` // "0xff000000"
	// Restores counts the times the nftables table was removed or changed
	// by someone else and written again.
	Restores uint64 `json:"restores"`
	// Flushes counts conntrack deletes by mark, Flushed the entries they
	// removed, FlushErrors those that failed.
	Flushes     uint64 `json:"flushes"`
	Flushed     uint64 `json:"flushed"`
	FlushErrors uint64 `json:"flush_errors"`
}

func (p *printer) pinning(s Pinning) {
	if !s.On {
		p.linef("pinning  off (%s)", s.Reason)
		return
	}
	p.linef("pinning  on (mask %s), %d table restores, %d conntrack flushes (%d entries, %d failed)",
		s.Mask, s.Restores, s.Flushes, s.Flushed, s.FlushErrors)
}

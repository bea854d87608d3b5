package main

import (
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// flowStats accumulates the arrivals of one sender.
type flowStats struct {
	seen        map[uint64]struct{}
	received    int
	duplicates  int
	reordered   int
	firstSeq    uint64
	lastSeq     uint64 // highest
	lastArrival time.Time
	maxGap      time.Duration
	maxGapSeq   uint64
	maxLatency  time.Duration
}

// add records datagram d arriving at now.
func (f *flowStats) add(d datagram, now time.Time) {
	if f.seen == nil {
		f.seen = make(map[uint64]struct{})
		f.firstSeq = d.seq
	}
	if _, dup := f.seen[d.seq]; dup {
		f.duplicates++
		return
	}
	f.seen[d.seq] = struct{}{}
	if f.received > 0 {
		if gap := now.Sub(f.lastArrival); gap > f.maxGap {
			f.maxGap, f.maxGapSeq = gap, d.seq
		}
		if d.seq < f.lastSeq {
			f.reordered++
		}
	}
	if f.received == 0 || d.seq > f.lastSeq {
		f.lastSeq = d.seq
	}
	f.received++
	f.lastArrival = now
	if lat := now.Sub(time.Unix(0, d.sentNS)); lat > f.maxLatency {
		f.maxLatency = lat
	}
}

// report summarises the flow at time now.
func (f *flowStats) report(now time.Time) lab.FlowReport {
	r := lab.FlowReport{
		Received:      f.received,
		Duplicates:    f.duplicates,
		Reordered:     f.reordered,
		FirstSeq:      f.firstSeq,
		LastSeq:       f.lastSeq,
		MaxGapMS:      ms(f.maxGap),
		MaxGapSeq:     f.maxGapSeq,
		TrailingGapMS: ms(now.Sub(f.lastArrival)),
		MaxLatencyMS:  ms(f.maxLatency),
	}
	if f.received > 0 {
		r.Lost = int(f.lastSeq+1) - f.received
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// sinkStats accumulates every sender's flow, keyed by "addr:port".
type sinkStats struct {
	flows map[string]*flowStats
}

func (s *sinkStats) add(from string, d datagram, now time.Time) {
	if s.flows == nil {
		s.flows = make(map[string]*flowStats)
	}
	f := s.flows[from]
	if f == nil {
		f = &flowStats{}
		s.flows[from] = f
	}
	f.add(d, now)
}

func (s *sinkStats) report(now time.Time) lab.SinkReport {
	r := lab.SinkReport{Flows: make(map[string]lab.FlowReport, len(s.flows))}
	for from, f := range s.flows {
		fr := f.report(now)
		r.Flows[from] = fr
		r.Received += fr.Received
		r.Lost += fr.Lost
		r.Duplicates += fr.Duplicates
		r.Reordered += fr.Reordered
		if r.MaxGapFlow == "" || fr.MaxGapMS > r.MaxGapMS {
			r.MaxGapMS, r.MaxGapSeq, r.MaxGapFlow = fr.MaxGapMS, fr.MaxGapSeq, from
		}
	}
	return r
}

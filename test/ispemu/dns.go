package ispemu

import (
	"golang.org/x/net/dns/dnsmessage"
)

// DNSAnswer answers a DNS query as a resolver that knows every name: an A
// record 192.0.2.1 for any A question, an NS record for any NS question,
// and no record for other types. It returns false for anything that is
// not a query with one question.
func DNSAnswer(query []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil, false
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return nil, false
	}
	q := qs[0]
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true})
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
	switch q.Type {
	case dnsmessage.TypeA:
		_ = b.AResource(rh, dnsmessage.AResource{A: [4]byte{192, 0, 2, 1}})
	case dnsmessage.TypeNS:
		_ = b.NSResource(rh, dnsmessage.NSResource{NS: dnsmessage.MustNewName("ns.example.")})
	}
	msg, err := b.Finish()
	return msg, err == nil
}

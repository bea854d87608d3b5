package probe

import (
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsResponse builds a response to query id with rcode and n A records.
func dnsResponse(t testing.TB, id uint16, response bool, rcode dnsmessage.RCode, n int) []byte {
	t.Helper()
	name := dnsmessage.MustNewName("example.net.")
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, Response: response, RCode: rcode})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	_ = b.StartAnswers()
	for range n {
		_ = b.AResource(dnsmessage.ResourceHeader{Name: name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: [4]byte{192, 0, 2, 1}})
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestDNSQuery(t *testing.T) {
	for _, c := range []struct {
		name, want string
		qtype      dnsmessage.Type
	}{{"", ".", dnsmessage.TypeNS}, {"example.net", "example.net.", dnsmessage.TypeA}, {"example.net.", "example.net.", dnsmessage.TypeA}} {
		q, err := dnsQuery(0x1234, c.name)
		if err != nil {
			t.Fatal(err)
		}
		var p dnsmessage.Parser
		h, err := p.Start(q)
		if err != nil || h.ID != 0x1234 || h.Response || !h.RecursionDesired {
			t.Fatalf("query header %+v, %v", h, err)
		}
		qs, err := p.AllQuestions()
		if err != nil || len(qs) != 1 || qs[0].Name.String() != c.want || qs[0].Type != c.qtype {
			t.Errorf("query for %q: questions %v, %v", c.name, qs, err)
		}
	}
}

func TestDNSAnswered(t *testing.T) {
	tests := []struct {
		name string
		msg  []byte
		want string // "" for success; errNotOurs by its text
	}{
		{"answer", dnsResponse(t, 7, true, dnsmessage.RCodeSuccess, 1), ""},
		{"two answers", dnsResponse(t, 7, true, dnsmessage.RCodeSuccess, 2), ""},
		{"other query", dnsResponse(t, 8, true, dnsmessage.RCodeSuccess, 1), errNotOurs.Error()},
		{"a query, not a response", dnsResponse(t, 7, false, dnsmessage.RCodeSuccess, 1), errNotOurs.Error()},
		{"NXDOMAIN", dnsResponse(t, 7, true, dnsmessage.RCodeNameError, 0), "RCodeNameError"},
		{"refused", dnsResponse(t, 7, true, dnsmessage.RCodeRefused, 0), "RCodeRefused"},
		{"no record", dnsResponse(t, 7, true, dnsmessage.RCodeSuccess, 0), "no record"},
		{"truncated", dnsResponse(t, 7, true, dnsmessage.RCodeSuccess, 1)[:20], "malformed"},
		{"garbage", []byte{1, 2, 3}, errNotOurs.Error()},
	}
	for _, tt := range tests {
		err := dnsAnswered(tt.msg, 7)
		if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// FuzzDNSAnswered: no response, however malformed, panics the check or
// passes it without being a successful answer to our query.
func FuzzDNSAnswered(f *testing.F) {
	f.Add(dnsResponse(f, 7, true, dnsmessage.RCodeSuccess, 1))
	f.Add(dnsResponse(f, 7, true, dnsmessage.RCodeNameError, 0))
	f.Fuzz(func(t *testing.T, msg []byte) {
		if dnsAnswered(msg, 7) != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(msg)
		if err != nil || h.ID != 7 || !h.Response || h.RCode != dnsmessage.RCodeSuccess {
			t.Fatalf("passed %+v, %v", h, err)
		}
	})
}

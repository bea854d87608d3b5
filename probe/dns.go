package probe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"

	"golang.org/x/net/dns/dnsmessage"
)

// checkDNS asks c's resolver, from the uplink's address and bound to its
// interface, for the A records of c's name (the root's NS records without
// one) and wants an answer: a response to this query, without error, with
// at least one record.
func (p *Prober) checkDNS(c Target) error {
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.CheckTimeout)
	defer cancel()
	id := uint16(rand.Uint32())
	q, err := dnsQuery(id, c.Name)
	if err != nil {
		return err
	}
	network := "udp4"
	if p.v6 {
		network = "udp6"
	}
	conn, err := p.boundDial(ctx, network, net.JoinHostPort(c.Addr.String(), strconv.Itoa(int(c.Port))))
	if err != nil {
		return err
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	if _, err := conn.Write(q); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return err
		}
		err = dnsAnswered(buf[:n], id)
		if errors.Is(err, errNotOurs) {
			continue // a stray datagram: keep waiting for ours
		}
		return err
	}
}

// errNotOurs marks a DNS message that is not the response to our query.
var errNotOurs = errors.New("not a response to this query")

// dnsQuery builds a recursive query with identifier id for the A records
// of name, or for the root's NS records when name is empty.
func dnsQuery(id uint16, name string) ([]byte, error) {
	qtype := dnsmessage.TypeA
	if name == "" {
		qtype = dnsmessage.TypeNS
	}
	n, err := dnsmessage.NewName(fqdn(name))
	if err != nil {
		return nil, fmt.Errorf("DNS name %q: %w", name, err)
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, 64), dnsmessage.Header{ID: id, RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(dnsmessage.Question{Name: n, Type: qtype, Class: dnsmessage.ClassINET}); err != nil {
		return nil, err
	}
	return b.Finish()
}

func fqdn(name string) string {
	if name == "" || name[len(name)-1] != '.' {
		return name + "."
	}
	return name
}

// dnsAnswered checks that msg is the response to query id, without error
// and with at least one answer.
func dnsAnswered(msg []byte, id uint16) error {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || !h.Response || h.ID != id {
		return errNotOurs
	}
	if h.RCode != dnsmessage.RCodeSuccess {
		return fmt.Errorf("resolver answered %v", h.RCode)
	}
	if err := p.SkipAllQuestions(); err != nil {
		return fmt.Errorf("malformed response: %w", err)
	}
	answers, err := p.AllAnswers()
	if err != nil {
		return fmt.Errorf("malformed response: %w", err)
	}
	if len(answers) == 0 {
		return errors.New("resolver answered with no record")
	}
	return nil
}

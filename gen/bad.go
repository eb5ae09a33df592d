package gen

import "strconv"

// Kinds of deliberately bad events, each of which event.Decoder rejects.
const (
	badNotJSON = iota
	badTruncated
	badMissingAmount
	badMissingStage
	badMissingKind
	badMissingTime
	badUnknownStage
	badProbability
	badTimestamp
	badUnknownType
	badNegativeOpp
	badControlChar
	badUnknownCurrency
	badAmountString
	badMissingEventID
	badTierOverride
	badNegativeWallet
	numBadKinds
)

var (
	badStages     = [...]string{"closed_maybe", "Negotiation", "discovery", "won"}
	badTimes      = [...]string{"2025-13-01T00:00:00Z", "03/04/2025 10:15", "1999-12-31T23:59:59Z", "yesterday", "2025-02-30T10:00:00Z", "2025-06-01 10:00:00"}
	badTypes      = [...]string{"invoice", "lead", "Order", "quote", ""}
	badProbs      = [...]string{"1.4", "-0.2", "140", "75"}
	badControls   = [...]string{`\u0000`, `\t`, `\n`, `\u007f`, `\u0085`}
	badGarbage    = [...]string{"ERROR upstream timeout", "<html><body>502 Bad Gateway</body></html>", "null", "[1,2,3]", "\"just a string\""}
	badOverrides  = [...]string{"platinum", "MAJOR", "tier-1"}
	badAmountStrs = [...]string{`"1200.00"`, `"12,50"`, `true`, `null`}
)

// bad builds a deliberately invalid event of a random kind for a random
// existing account, at slot time t.
func (g *Generator) bad(t int64) Record {
	r := g.rng
	i := 0
	if g.created > 0 {
		i = r.IntN(g.created)
	} else {
		i = r.IntN(len(g.accts))
	}
	a := &g.accts[i]
	rec := Record{AccountID: a.id, Time: t, Bad: true}
	pick := func(list []string) string { return list[r.IntN(len(list))] }
	var b []byte
	switch kind := r.IntN(numBadKinds); kind {
	case badNotJSON:
		b = append(g.buf[:0], pick(badGarbage[:])...)
	case badTruncated:
		b = g.begin("order", a.id, t)
		b = append(b, `,"order_id":"ord-`...)
		b = strconv.AppendInt(b, int64(g.n), 10)
		b = append(b, `","amount":12`...)
		g.buf = b
		rec.Line = b
		return rec
	case badMissingAmount:
		rec.Type = "order"
		b = g.begin("order", a.id, t)
		b = append(b, `,"order_id":"ord-x`...)
		b = strconv.AppendInt(b, int64(g.n), 10)
		b = append(b, '"')
		b = append(b, '}')
	case badMissingStage:
		rec.Type = "opportunity"
		b = g.begin("opportunity", a.id, t)
		b = append(b, `,"opportunity_id":"opp-x1","amount":5000}`...)
	case badMissingKind:
		rec.Type = "activity"
		b = g.begin("activity", a.id, t)
		b = append(b, `,"owner_id":"rep-03"}`...)
	case badMissingTime:
		rec.Type = "activity"
		b = g.beginUntimed(a.id)
		b = append(b, `","kind":"call"}`...)
	case badUnknownStage, badProbability, badNegativeOpp:
		rec.Type = "opportunity"
		b = g.begin("opportunity", a.id, t)
		b = append(b, `,"opportunity_id":"opp-x`...)
		b = strconv.AppendInt(b, int64(g.n), 10)
		switch kind {
		case badUnknownStage:
			b = append(b, `","stage":"`...)
			b = append(b, pick(badStages[:])...)
			b = append(b, `","amount":25000}`...)
		case badProbability:
			b = append(b, `","stage":"proposal","amount":25000,"probability":`...)
			b = append(b, pick(badProbs[:])...)
			b = append(b, '}')
		default:
			b = append(b, `","stage":"qualification","amount":-`...)
			b = appendCents(b, 100+r.Int64N(5_000_000))
			b = append(b, '}')
		}
	case badTimestamp:
		rec.Type = "activity"
		b = g.beginUntimed(a.id)
		if r.IntN(5) == 0 {
			b = append(b, `","occurred_at":`...)
			b = strconv.AppendInt(b, t, 10) // epoch seconds, not a string
			b = append(b, `,"kind":"call"}`...)
		} else {
			b = append(b, `","occurred_at":"`...)
			b = append(b, pick(badTimes[:])...)
			b = append(b, `","kind":"call"}`...)
		}
	case badUnknownType:
		b = g.begin(pick(badTypes[:]), a.id, t)
		b = append(b, `,"amount":100}`...)
	case badControlChar:
		rec.Type = "activity"
		b = g.beginUntimed(a.id)
		b = append(b, pick(badControls[:])...)
		b = append(b, `","occurred_at":"`...)
		b = g.appendTime(b, t)
		b = append(b, `","kind":"email"}`...)
	case badUnknownCurrency:
		rec.Type = "order"
		b = g.begin("order", a.id, t)
		b = append(b, `,"order_id":"ord-x`...)
		b = strconv.AppendInt(b, int64(g.n), 10)
		b = append(b, `","amount":1500,"currency":"`...)
		b = append(b, pick(g.badCurs)...)
		b = append(b, `"}`...)
	case badAmountString:
		rec.Type = "order"
		b = g.begin("order", a.id, t)
		b = append(b, `,"order_id":"ord-x`...)
		b = strconv.AppendInt(b, int64(g.n), 10)
		b = append(b, `","amount":`...)
		b = append(b, pick(badAmountStrs[:])...)
		b = append(b, '}')
	case badMissingEventID:
		rec.Type = "activity"
		b = append(g.buf[:0], `{"type":"activity","account_id":"`...)
		b = append(b, a.id...)
		b = append(b, `","occurred_at":"`...)
		b = g.appendTime(b, t)
		b = append(b, `","kind":"visit"}`...)
	case badTierOverride:
		rec.Type = "account"
		b = g.begin("account", a.id, t)
		b = append(b, `,"tier_override":"`...)
		b = append(b, pick(badOverrides[:])...)
		b = append(b, `"}`...)
	case badNegativeWallet:
		rec.Type = "account"
		b = g.begin("account", a.id, t)
		b = append(b, `,"wallet":-`...)
		b = strconv.AppendInt(b, 1000+r.Int64N(100_000), 10)
		b = append(b, '}')
	}
	g.buf = b
	rec.Line = b
	return rec
}

// beginUntimed starts an activity event without its occurred_at, for the
// bad events that leave it out or spell it wrongly; it stops after the
// account_id's value, before its closing quote.
func (g *Generator) beginUntimed(accountID string) []byte {
	b := append(g.buf[:0], `{"event_id":"`...)
	b = append(b, g.idPref...)
	b = strconv.AppendInt(b, int64(g.n), 10)
	b = append(b, `","type":"activity","account_id":"`...)
	return append(b, accountID...)
}

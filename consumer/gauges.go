package consumer

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/metrics"
	"github.com/pyramid-crm/pyramid/scoring"
)

// Results of an event, the result label of pyramid_events_total.
const (
	resApplied = iota
	resDuplicate
	resRejected
)

// counters are the children of the pipeline's per-event metrics, looked
// up once: partitions update them for every event they apply.
type counters struct {
	m      *metrics.Metrics
	events [5][3]prometheus.Counter // [event type][applied, duplicate, rejected]
	// Per tier: accounts and neglected accounts, and changes [from][to].
	accounts, neglected [5]prometheus.Gauge
	tierChanges         [5][5]prometheus.Counter
}

func newCounters(m *metrics.Metrics) *counters {
	c := &counters{m: m}
	for t := range c.events {
		name := event.Type(t).String()
		if t == 0 {
			name = "unknown" // rejected before its type was known
		}
		for r, res := range []string{"applied", "duplicate", "rejected"} {
			c.events[t][r] = m.Events.WithLabelValues(name, res)
		}
	}
	// Every tier and every possible change starts at zero, so dashboards
	// and rate() see the series before the first account lands there.
	for to := scoring.MassMarket; to <= scoring.Major; to++ {
		c.accounts[to] = m.Accounts.WithLabelValues(to.String())
		c.neglected[to] = m.Neglected.WithLabelValues(to.String())
		for from := scoring.TierNone; from <= scoring.Major; from++ {
			if from != to {
				c.tierChanges[from][to] = m.TierChanges.WithLabelValues(from.String(), to.String())
			}
		}
	}
	return c
}

// event counts an event of type t with result res.
func (c *counters) event(t event.Type, res int) {
	if int(t) >= len(c.events) {
		t = 0
	}
	c.events[t][res].Inc()
}

// accountsGauge and neglectedGauge return the gauges' children for tier t;
// TierNone, which no account should be counted under, is looked up.
func (c *counters) accountsGauge(t scoring.Tier) prometheus.Gauge {
	return tierGauge(&c.accounts, c.m.Accounts, t)
}

func (c *counters) neglectedGauge(t scoring.Tier) prometheus.Gauge {
	return tierGauge(&c.neglected, c.m.Neglected, t)
}

func tierGauge(cached *[5]prometheus.Gauge, vec *prometheus.GaugeVec, t scoring.Tier) prometheus.Gauge {
	if g := cached[t]; g != nil {
		return g
	}
	return vec.WithLabelValues(t.String())
}

// partitionGauges is one partition's share of the tier gauges, which the
// partition gives back when it goes to another member.
type partitionGauges struct {
	c     *counters
	tiers [5]int // accounts per tier
	// neglected maps accounts with an open alert to the tier the gauge
	// counts them under.
	neglected map[string]scoring.Tier
}

// restored counts an account restored from the changelog; added then
// moves the restored counts into the gauges at once.
func (g *partitionGauges) restored(a *scoring.Account) {
	g.tiers[a.Tier]++
	if _, open := a.AlertOpen(); open {
		// The gauge counts an open alert under the tier it opened in.
		g.neglected[a.ID] = a.Tier
		g.c.neglectedGauge(a.Tier).Inc()
	}
}

func (g *partitionGauges) added() {
	for t, n := range g.tiers {
		if n != 0 && t != int(scoring.TierNone) {
			g.c.accountsGauge(scoring.Tier(t)).Add(float64(n))
		}
	}
}

// collect counts the tier changes and alerts of out from index c0 and a0
// on, which the engine has just added.
func (g *partitionGauges) collect(out *scoring.Output, c0, a0 int) {
	for _, ch := range out.Changes[c0:] {
		if tc := g.c.tierChanges[ch.From][ch.To]; tc != nil {
			tc.Inc()
		} else {
			g.c.m.TierChanges.WithLabelValues(ch.From.String(), ch.To.String()).Inc()
		}
		if ch.From != scoring.TierNone {
			g.tiers[ch.From]--
			g.c.accountsGauge(ch.From).Dec()
		}
		g.tiers[ch.To]++
		g.c.accountsGauge(ch.To).Inc()
	}
	for i := a0; i < len(out.Alerts); i++ {
		al := &out.Alerts[i]
		if al.Status == scoring.StatusOpen {
			g.neglected[al.AccountID] = al.Tier
			g.c.neglectedGauge(al.Tier).Inc()
		} else if t, ok := g.neglected[al.AccountID]; ok {
			delete(g.neglected, al.AccountID)
			g.c.neglectedGauge(t).Dec()
		}
	}
}

// release takes the partition's accounts out of the gauges.
func (g *partitionGauges) release() {
	for t, n := range g.tiers {
		if n != 0 && t != int(scoring.TierNone) {
			g.c.accountsGauge(scoring.Tier(t)).Sub(float64(n))
		}
	}
	for _, t := range g.neglected {
		g.c.neglectedGauge(t).Dec()
	}
}

// Package metrics defines every Prometheus metric Pyramid exports, in one
// place, built from an injected Registerer (as Prometheus's own
// queue_manager does) so tests use a private registry. Names carry the
// pyramid_ prefix; counters end in _total and durations in _seconds. The
// README's metrics table and the rules and dashboards under deploy/ are
// checked against Names by tests.
package metrics

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
)

// Metrics holds every metric. Fields are safe for concurrent use.
type Metrics struct {
	Events          *prometheus.CounterVec // type, result (applied|duplicate|rejected)
	DLQ             *prometheus.CounterVec // reason
	Accounts        *prometheus.GaugeVec   // tier
	TierChanges     *prometheus.CounterVec // from, to
	Neglected       *prometheus.GaugeVec   // tier
	AlertsOpened    *prometheus.CounterVec // tier
	AlertsResolved  *prometheus.CounterVec // tier
	AlertDLQ        prometheus.Counter     // alerts given up on and sent to pyramid.alerts.dlq
	SinkFlush       prometheus.Histogram   // seconds per successful flush
	SinkFlushes     *prometheus.CounterVec // reason (size|interval|caught_up|shutdown)
	SinkRows        *prometheus.CounterVec // table
	SinkErrors      *prometheus.CounterVec // sink: failed write attempts
	SinkRetries     *prometheus.CounterVec // sink: retried write attempts
	SinkUp          *prometheus.GaugeVec   // sink: 1 when the last write succeeded
	ConsumerLag     *prometheus.GaugeVec   // topic, partition: end − committed offset
	FetchLag        *prometheus.GaugeVec   // topic, partition: end − fetched offset
	PartitionsOwned prometheus.Gauge       // partitions this instance works on
	AccountsFrozen  prometheus.Gauge       // accounts whose state record nearly fills the state topic's limit
	Restore         prometheus.Histogram   // seconds to restore a partition's state
	EventLatency    prometheus.Histogram   // Kafka append to durable sink write
	Rebalances      prometheus.Counter     // consumer group generations joined
	ChangelogWrites prometheus.Counter     // state records written
	// Capacity-capped tiers: accounts a ranking moved down out of a tier,
	// places held per capped tier after the latest ranking, and
	// partitions waiting for the other partitions' candidates.
	CapacityDemotions *prometheus.CounterVec // tier
	CapacityHeld      *prometheus.GaugeVec   // tier
	CapacityWaiting   prometheus.Gauge
	// The repartitioner's (package repartition).
	RepartitionRecords *prometheus.CounterVec // topic: declared input records read and handled
	RepartitionEvents  *prometheus.CounterVec // type: events written to the repartition topics
	RepartitionErrors  *prometheus.CounterVec // topic, reason: records that could not be mapped
	RepartitionLag     *prometheus.GaugeVec   // topic, partition: declared input records not yet committed
	BuildInfo          *prometheus.GaugeVec   // version, goversion
	registered         []prometheus.Collector
}

// Names lists every metric family name, for documentation checks.
var Names = []string{
	"pyramid_events_total", "pyramid_dlq_total", "pyramid_accounts", "pyramid_tier_changes_total",
	"pyramid_neglected_accounts", "pyramid_alerts_opened_total", "pyramid_alerts_resolved_total",
	"pyramid_alert_dlq_total",
	"pyramid_sink_flush_seconds", "pyramid_sink_flushes_total", "pyramid_sink_rows_total",
	"pyramid_sink_errors_total", "pyramid_sink_retries_total", "pyramid_sink_up",
	"pyramid_consumer_lag", "pyramid_consumer_fetch_lag", "pyramid_partitions_owned", "pyramid_accounts_frozen", "pyramid_state_restore_seconds",
	"pyramid_event_latency_seconds", "pyramid_rebalances_total", "pyramid_changelog_writes_total",
	"pyramid_capacity_demotions_total", "pyramid_capacity_held", "pyramid_capacity_waiting_partitions",
	"pyramid_repartition_records_total", "pyramid_repartition_events_total", "pyramid_repartition_errors_total",
	"pyramid_repartition_lag", "pyramid_build_info",
}

// EventResults are the values of pyramid_events_total's result label.
var EventResults = []string{"applied", "duplicate", "rejected"}

// Version is the build version, set with -ldflags at release time.
var Version = "dev"

// New creates the metrics and registers them with reg (nil: not registered).
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{}
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		m.registered = append(m.registered, c)
		return c
	}
	gv := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		m.registered = append(m.registered, g)
		return g
	}
	c := func(name, help string) prometheus.Counter {
		x := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		m.registered = append(m.registered, x)
		return x
	}
	g := func(name, help string) prometheus.Gauge {
		x := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		m.registered = append(m.registered, x)
		return x
	}
	h := func(name, help string, buckets []float64) prometheus.Histogram {
		x := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
		m.registered = append(m.registered, x)
		return x
	}
	m.Events = cv("pyramid_events_total", "Events read, by type and result (applied, duplicate, rejected).", "type", "result")
	m.DLQ = cv("pyramid_dlq_total", "Events sent to the dead-letter topic, by reason.", "reason")
	m.Accounts = gv("pyramid_accounts", "Accounts owned by this instance, by tier.", "tier")
	m.TierChanges = cv("pyramid_tier_changes_total", "Tier changes, by from and to tier.", "from", "to")
	m.Neglected = gv("pyramid_neglected_accounts", "Accounts currently neglected (open alert), by tier.", "tier")
	m.AlertsOpened = cv("pyramid_alerts_opened_total", "Neglect alerts opened, by tier.", "tier")
	m.AlertsResolved = cv("pyramid_alerts_resolved_total", "Neglect alerts resolved, by tier.", "tier")
	m.AlertDLQ = c("pyramid_alert_dlq_total", "Alerts the webhook gave up on, sent to pyramid.alerts.dlq.")
	m.SinkFlush = h("pyramid_sink_flush_seconds", "Duration of successful sink flushes.", prometheus.ExponentialBuckets(0.001, 2, 16))
	m.SinkFlushes = cv("pyramid_sink_flushes_total", "Sink flushes, by what triggered them (size, interval, caught_up, shutdown).", "reason")
	m.SinkRows = cv("pyramid_sink_rows_total", "Rows written to the sink, by table.", "table")
	// One series per destination (see internal/retry): the sinks, the
	// alerts topic, the webhook, and the pipeline's own Kafka writes.
	m.SinkErrors = cv("pyramid_sink_errors_total", "Write attempts that failed, by destination.", "sink")
	m.SinkRetries = cv("pyramid_sink_retries_total", "Write attempts retried after an error that can heal, by destination.", "sink")
	m.SinkUp = gv("pyramid_sink_up", "1 when the last write to the destination succeeded, 0 while it is failing.", "sink")
	m.ConsumerLag = gv("pyramid_consumer_lag", "Messages between the committed offset and the partition end, refreshed every few seconds whatever the sink does.", "topic", "partition")
	m.FetchLag = gv("pyramid_consumer_fetch_lag", "Messages between the offset the consumer has fetched to and the partition end: the part of pyramid_consumer_lag not read yet.", "topic", "partition")
	m.PartitionsOwned = g("pyramid_partitions_owned", "Input partitions this instance owns.")
	m.AccountsFrozen = g("pyramid_accounts_frozen", "Accounts taking no events because their state record nearly fills what the state topic takes (max.message.bytes); their events are dead-lettered with reason limit.")
	m.Restore = h("pyramid_state_restore_seconds", "Time to restore one partition's state from the changelog.", prometheus.ExponentialBuckets(0.01, 2, 14))
	m.EventLatency = h("pyramid_event_latency_seconds", "From Kafka append to durable sink write.", prometheus.ExponentialBuckets(0.005, 2, 14))
	m.Rebalances = c("pyramid_rebalances_total", "Consumer group generations this instance joined.")
	m.ChangelogWrites = c("pyramid_changelog_writes_total", "State records written to the changelog topic.")
	m.CapacityDemotions = cv("pyramid_capacity_demotions_total", "Accounts a capacity ranking moved down out of a capped tier, by that tier.", "tier")
	m.CapacityHeld = gv("pyramid_capacity_held", "Places held in a capped tier (pinned and ranked) after the latest capacity ranking of this instance, by tier.", "tier")
	m.CapacityWaiting = g("pyramid_capacity_waiting_partitions", "Caught-up partitions of this instance whose capacity ranking waits for other partitions' candidates.")
	m.RepartitionRecords = cv("pyramid_repartition_records_total", "Records of declared inputs read, mapped and written (or dead-lettered), by topic.", "topic")
	m.RepartitionEvents = cv("pyramid_repartition_events_total", "Mapped events written to the repartition topics, by event type.", "type")
	m.RepartitionErrors = cv("pyramid_repartition_errors_total", "Records of declared inputs that could not be mapped (dead-lettered), by topic and reason.", "topic", "reason")
	m.RepartitionLag = gv("pyramid_repartition_lag", "Records of a declared input partition after the repartitioner's committed offset.", "topic", "partition")
	m.BuildInfo = gv("pyramid_build_info", "Build information; the value is always 1.", "version", "goversion")
	m.BuildInfo.WithLabelValues(version(), runtime.Version()).Set(1)
	m.zeroKnownSeries()
	if reg != nil {
		for _, c := range m.registered {
			reg.MustRegister(c)
		}
	}
	return m
}

// zeroKnownSeries creates, at 0, every series of a counter whose label
// values are known in advance: rate() and alert rules then see the series
// before the first event of its kind, instead of nothing.
func (m *Metrics) zeroKnownSeries() {
	for _, r := range event.Reasons {
		m.DLQ.WithLabelValues(r)
	}
	types := []string{"unknown"} // rejected before its type was known
	for _, t := range event.Types {
		types = append(types, t.String())
	}
	for _, t := range types {
		for _, r := range EventResults {
			m.Events.WithLabelValues(t, r)
		}
	}
	for _, t := range config.TierNames {
		m.AlertsOpened.WithLabelValues(t)
		m.AlertsResolved.WithLabelValues(t)
		if t != config.MassMarket { // the one tier that cannot be capped
			m.CapacityDemotions.WithLabelValues(t)
		}
	}
}

func version() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return Version
}

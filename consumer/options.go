package consumer

import (
	"errors"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/metrics"
	"github.com/pyramid-crm/pyramid/scoring"
	"github.com/pyramid-crm/pyramid/sink"
)

// DefaultGroup is the consumer group when Options.Group is empty.
const DefaultGroup = "pyramid"

// Options configures a Pipeline. Zero values take the defaults named on
// each field.
type Options struct {
	Brokers   []string
	Topics    []string // input topics; default kafkaio.InputTopics(kafkaio.DefaultInputPrefix)
	Group     string   // consumer group; default "pyramid"
	Changelog string   // compacted state topic; default kafkaio.State
	DLQ       string   // dead-letter topic; default kafkaio.DeadLetters
	// CapacityTopic carries every partition's candidates for the capped
	// tiers (capacity.go); default kafkaio.Capacity. Used only when a
	// tier has max_accounts.
	CapacityTopic string

	Config *config.Config // default config.Default()
	// Params is Config compiled (scoring.NewParams(Config)); a service
	// compiles it once for all its parts. Default: compiled here.
	Params *scoring.Params
	Sink   sink.Sink // required
	Now    func() time.Time

	// A partition flushes (sink, then changelog, then offsets) every
	// FlushInterval and whenever FlushSize events were read since its last
	// flush; while it backfills, every BackfillFlushes × FlushInterval
	// (see backfillFlushes). While a flush is being written the next one
	// gathers; past 4 × FlushSize pending events the partition stops
	// reading.
	FlushInterval time.Duration // default 1s
	FlushSize     int           // events per partition; default 100,000
	// CaughtUpFlush: a partition that has read and applied all of its input
	// flushes once per slot of this length (slots are aligned to the clock,
	// the same for every partition) instead of waiting for the next
	// FlushInterval: nothing more would join the batch by waiting. The slots
	// keep a trickle of events from turning into a sink write per event,
	// and partitions catching up in the same slot share one sink write.
	// Default FlushInterval/5; negative: off.
	CaughtUpFlush  time.Duration
	ReevalInterval time.Duration // re-evaluate every owned account; default 1m
	// BackfillLag: while a partition has unread input and its stream time
	// trails the wall clock by more than this, accounts are judged at the
	// stream time (see clock.go). Default 15m; negative: always the
	// wall clock.
	BackfillLag time.Duration
	// MergeWait bounds how long a worker waits for an input topic that has
	// more to read but nothing fetched, before applying the other topics'
	// older-or-newer events without it until it brings something (see
	// merger). Default 200ms.
	MergeWait time.Duration

	Metrics *metrics.Metrics // default: unregistered metrics
	Logger  *slog.Logger     // default slog.Default()

	// Observe is called after each durable flush with what the partition's
	// flush wrote; b is only valid during the call. It feeds the HTTP view.
	Observe func(partition int, b *sink.Batch)
	// OnRevoke is called when this instance stops owning a partition.
	OnRevoke func(partition int)
	// OnRanking is called with every capacity ranking a partition of this
	// instance applied (from the partition's goroutine; keep it quick).
	// Rankings cover every partition, so the latest says how the capped
	// tiers stand in the whole deployment.
	OnRanking func(r *scoring.Ranking)

	// Dialer is used for the consumer group and for fetching (TLS, SASL,
	// client id). Transport is used for producing and for admin requests;
	// when nil it is built from Dialer.
	Dialer    *kafka.Dialer
	Transport kafka.RoundTripper

	// Consumer group timing; defaults are kafka-go's (3s, 30s, 30s, 5s).
	HeartbeatInterval time.Duration
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	JoinGroupBackoff  time.Duration

	FetchMaxWait  time.Duration // long-poll wait of a fetch; default 250ms
	FetchMaxBytes int           // bytes per fetch per topic-partition; default 512 KiB

	// ShutdownTimeout bounds the final flush, commit and group leave when
	// the context is cancelled; default 10s.
	ShutdownTimeout time.Duration

	// LagInterval is how often the consumer lag gauges are refreshed from
	// the partitions' end offsets, whatever the sink does (see lag.go);
	// default 5s.
	LagInterval time.Duration

	// LayoutCheckInterval is how often the partition counts of the input
	// and state topics are checked against those at start (see
	// Pipeline.watchLayout); default 30s.
	LayoutCheckInterval time.Duration
}

func (o *Options) withDefaults() (Options, error) {
	c := *o
	if len(c.Brokers) == 0 {
		return c, errors.New("consumer: no Kafka brokers configured")
	}
	if c.Sink == nil {
		return c, errors.New("consumer: no sink configured")
	}
	if len(c.Topics) == 0 {
		c.Topics = kafkaio.InputTopics(kafkaio.DefaultInputPrefix)
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.Changelog == "" {
		c.Changelog = kafkaio.State
	}
	if c.DLQ == "" {
		c.DLQ = kafkaio.DeadLetters
	}
	if c.CapacityTopic == "" {
		c.CapacityTopic = kafkaio.Capacity
	}
	if c.Config == nil {
		c.Config = config.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.CaughtUpFlush == 0 {
		c.CaughtUpFlush = c.FlushInterval / 5
	}
	if c.FlushSize <= 0 {
		c.FlushSize = 100000
	}
	if c.MergeWait <= 0 {
		c.MergeWait = 200 * time.Millisecond
	}
	if c.BackfillLag == 0 {
		c.BackfillLag = 15 * time.Minute
	}
	if c.ReevalInterval <= 0 {
		c.ReevalInterval = time.Minute
	}
	if c.Metrics == nil {
		c.Metrics = metrics.New(nil)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Logger = c.Logger.With("component", "consumer")
	if c.Dialer == nil {
		c.Dialer = kafkaio.Dialer()
	}
	if c.Transport == nil {
		c.Transport = kafkaio.Transport(c.Dialer)
	}
	if c.FetchMaxWait <= 0 {
		c.FetchMaxWait = kafkaio.DefaultFetchMaxWait
	}
	if c.FetchMaxBytes <= 0 {
		c.FetchMaxBytes = kafkaio.DefaultFetchMaxBytes
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.LagInterval <= 0 {
		c.LagInterval = 5 * time.Second
	}
	if c.LayoutCheckInterval <= 0 {
		c.LayoutCheckInterval = 30 * time.Second
	}
	seen := map[string]bool{}
	for _, t := range c.Topics {
		if seen[t] {
			return c, errors.New("consumer: input topic " + t + " is listed twice")
		}
		seen[t] = true
	}
	for _, t := range []string{c.Changelog, c.DLQ, c.CapacityTopic} {
		if seen[t] {
			return c, errors.New("consumer: topic " + t + " cannot be both an input and an internal topic")
		}
	}
	return c, nil
}

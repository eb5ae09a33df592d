package consumer

import (
	"fmt"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/event"
)

// validate decodes a message and applies every rule that does not depend
// on an account's state: the decoder's (docs/events.md), the future limit
// against the wall clock wall (Unix ns), and the key. It runs when a fetch
// response is queued for the merge, before the message takes any part in
// the event-time order: a rejected message sorts first and goes to the
// dead-letter topic at once, so its occurred_at (2199, or a producer's
// clock a day ahead) neither holds back the rest of its topic nor moves a
// clock, and the accounts around it get the results they would get
// without it. The rules that depend on an account's state (the limits, the
// figure bound) are the engine's and are decided when the event is
// applied, in its place in the order.
func validate(dec *event.Decoder, m *kafka.Message, ev *event.Event, wall int64) error {
	if err := dec.DecodeTo(m.Value, ev); err != nil {
		return err
	}
	if err := event.CheckFuture(ev, wall); err != nil {
		return err
	}
	return checkKey(m.Key, ev.AccountID)
}

// checkKey requires the message key to be the event's account_id. Input
// topics are partitioned by it, which is what brings all of an account's
// events to one partition number and so to one state: a message without a
// key lands on whichever partition the producer picked, and applying it
// there would give the account a second, partial state (two rows for one
// account in the sink). Declared inputs (the inputs: section) keyed by
// their own primary keys never reach this check: the repartitioner reads
// them and writes their events, keyed by account_id, to the
// pyramid.repartition.* topics this pipeline reads.
func checkKey(key []byte, accountID string) error {
	if len(key) == 0 {
		return &event.Error{Reason: event.ReasonBadKey, Msg: fmt.Sprintf(
			"message has no key; input topics must be keyed by account_id (%q), or an account's events land on several partitions and split its state", trunc(accountID))}
	}
	if string(key) != accountID {
		return &event.Error{Reason: event.ReasonBadKey, Msg: fmt.Sprintf(
			"message key %q is not its account_id %q; input topics must be keyed by account_id, or an account's events land on several partitions and split its state", trunc(string(key)), trunc(accountID))}
	}
	return nil
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

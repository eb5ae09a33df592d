// Package event decodes and validates the CRM events of docs/events.md.
//
// Decode is the single entry point for outside input, in replay and in
// streaming alike. It never panics; every rejection is an *Error carrying a
// short Reason (for counters and dead-letter headers) and a message a person
// can act on, such as `opportunity "o-9": probability 1.4 is outside 0..1`.
// Amounts are converted to integer cents of the reporting currency here, so
// the scoring core sees only exact money.
package event

import (
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/money"
)

// Type is an event type.
type Type uint8

// Event types.
const (
	Order Type = iota + 1
	Opportunity
	Activity
	Account
)

var typeNames = [...]string{"", "order", "opportunity", "activity", "account"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "unknown"
}

// Types lists every event type, for metrics labels.
var Types = []Type{Order, Opportunity, Activity, Account}

// MaxSize is the largest accepted encoded event.
const MaxSize = 1 << 20

// minTime is the earliest accepted occurred_at (year 2000).
var minTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// maxTime keeps nanosecond timestamps far from int64 overflow.
var maxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// Field is an optional account-profile field: absent, explicitly null
// (clear it), or set to V.
type Field[T any] struct {
	Set  bool // present in the event (as a value or null)
	Null bool // present as null: clear the field
	V    T
}

// Event is one decoded, valid event. Times are Unix nanoseconds UTC; money
// is in cents of the reporting currency.
type Event struct {
	ID         string
	Type       Type
	AccountID  string
	OccurredAt int64

	// order and opportunity
	OpportunityID string
	Amount        money.Cents
	// order
	OrderID string
	// opportunity
	Stage   string
	ProbPPM int64 // probability in millionths; the stage default when absent
	// Deleted marks an opportunity removed in the source system (a CRM
	// delete): it leaves the account under the same last-writer-wins rule
	// as an upsert, and carries no stage or amount.
	Deleted bool

	// activity
	Kind    string
	OwnerID string // activity: the rep who made the touch

	// account
	Name         Field[string]
	Owner        Field[string]
	Wallet       Field[money.Cents]
	TierOverride Field[string]
	SnoozeUntil  Field[int64]
}

// Time returns OccurredAt as a time.Time in UTC.
func (e *Event) Time() time.Time { return time.Unix(0, e.OccurredAt).UTC() }

// Reasons for rejecting an event, used as metric labels, in the
// pyramid-reason header of dead letters and in replay summaries.
const (
	ReasonTooLarge        = "too_large"
	ReasonNotJSON         = "not_json"
	ReasonMissingField    = "missing_field"
	ReasonInvalidField    = "invalid_field"
	ReasonUnknownType     = "unknown_type"
	ReasonUnknownStage    = "unknown_stage"
	ReasonUnknownCurrency = "unknown_currency"
	ReasonFuture          = "future_event"
	// ReasonBadKey: the message has no key, or a key that is not its
	// account_id, so it may sit in another partition than its account.
	ReasonBadKey = "bad_key"
	// ReasonLimit: applying the event would exceed a configured bound of
	// the account's state (limits.*); the message names the limit.
	ReasonLimit = "limit"
	// ReasonOutOfRange: applying the event would take a figure of the
	// account beyond ±1e15 in the reporting currency (scoring.MaxFigure).
	ReasonOutOfRange = "out_of_range"
)

// Reasons lists every rejection reason, in the order the README documents
// them; metrics export each at 0 from the start.
var Reasons = []string{ReasonTooLarge, ReasonNotJSON, ReasonMissingField, ReasonInvalidField,
	ReasonUnknownType, ReasonUnknownStage, ReasonUnknownCurrency, ReasonFuture,
	ReasonBadKey, ReasonLimit, ReasonOutOfRange}

// Bounds on the strings an event carries, so that no producer can make an
// account's state grow without limit through one field.
const (
	MaxIDLen   = 128 // event_id, account_id, order_id, opportunity_id, owner_id
	MaxNameLen = 256 // name, activity kind
)

// FutureLimit is how far after the wall clock an event may lie, in
// streaming and in replay alike: further is a producer's clock or time zone
// gone wrong, and judging accounts at such a time would wreck them.
const FutureLimit = 24 * time.Hour

// CheckFuture rejects ev when it lies more than FutureLimit after wall
// (Unix ns).
func CheckFuture(ev *Event, wall int64) error {
	if ev.OccurredAt <= wall+int64(FutureLimit) {
		return nil
	}
	f := func(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339) }
	return &Error{ReasonFuture, fmt.Sprintf(
		"occurred_at %s is more than 24h after the wall clock %s; fix the producer's clock or time zone",
		f(ev.OccurredAt), f(wall))}
}

// Error is a rejected event.
type Error struct {
	Reason string // one of the Reason constants
	Msg    string // one line a person can act on
}

func (e *Error) Error() string { return e.Msg }

// ReasonOf returns the rejection reason of err, or "" when err is no *Error.
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// Decoder validates events against a configuration (stages, currencies).
type Decoder struct {
	stages   map[string]int64    // stage -> default probability in ppm
	fx       map[string]*big.Rat // currency -> exact decimal rate
	currency string
}

// NewDecoder builds a decoder for cfg.
func NewDecoder(cfg *config.Config) *Decoder {
	d := &Decoder{stages: map[string]int64{}, fx: map[string]*big.Rat{}, currency: cfg.Currency}
	for s, p := range cfg.Stages {
		ppm, _ := money.ParseRatio(fmt.Sprint(p))
		d.stages[s] = ppm
	}
	for c, r := range cfg.FXRates {
		// The shortest decimal that reads back as r: the rate as written
		// in the file. Millionths would lose small rates (VND, IDR).
		if rat, ok := new(big.Rat).SetString(strconv.FormatFloat(r, 'g', -1, 64)); ok {
			d.fx[c] = rat
		}
	}
	return d
}

// Decode parses and validates one encoded event. The string fields of the
// returned Event may share memory with b: they stay valid as long as b is
// not modified, so a caller that reuses its buffer must copy what it keeps
// (scoring.Engine copies everything it retains).
func (d *Decoder) Decode(b []byte) (Event, error) {
	var ev Event
	err := d.DecodeTo(b, &ev)
	return ev, err
}

// DecodeTo is Decode into *ev, which it overwrites; on error ev holds what
// was decoded before the failure.
func (d *Decoder) DecodeTo(b []byte, ev *Event) error {
	*ev = Event{}
	if len(b) > MaxSize {
		return &Error{ReasonTooLarge, fmt.Sprintf("event is %d bytes; the limit is %d (1 MiB)", len(b), MaxSize)}
	}
	var r raw
	sc := scanner{b: b}
	if err := sc.object(&r); err != nil {
		return &Error{ReasonNotJSON, "not a JSON object: " + err.Error()}
	}
	return d.build(&r, ev)
}

// raw holds the scanned top-level fields we know; later duplicates win, as
// in encoding/json.
type raw struct {
	eventID, typ, accountID, occurredAt      value
	orderID, amount, currency, opportunityID value
	stage, probability, kind, ownerID        value
	name, wallet, tierOverride, snoozeUntil  value
	deleted                                  value
}

// field maps a key to its slot, dispatching on the first byte so that the
// common keys cost one or two comparisons.
func (r *raw) field(key string) *value {
	if key == "" {
		return nil
	}
	var slot *value
	var name string
	switch key[0] {
	case 'a':
		switch key {
		case "account_id":
			return &r.accountID
		case "amount":
			return &r.amount
		}
		return nil
	case 'c':
		slot, name = &r.currency, "currency"
	case 'd':
		slot, name = &r.deleted, "deleted"
	case 'e':
		slot, name = &r.eventID, "event_id"
	case 'k':
		slot, name = &r.kind, "kind"
	case 'n':
		slot, name = &r.name, "name"
	case 'o':
		switch key {
		case "occurred_at":
			return &r.occurredAt
		case "order_id":
			return &r.orderID
		case "opportunity_id":
			return &r.opportunityID
		case "owner_id":
			return &r.ownerID
		}
		return nil
	case 'p':
		slot, name = &r.probability, "probability"
	case 's':
		switch key {
		case "stage":
			return &r.stage
		case "snooze_alerts_until":
			return &r.snoozeUntil
		}
		return nil
	case 't':
		switch key {
		case "type":
			return &r.typ
		case "tier_override":
			return &r.tierOverride
		}
		return nil
	case 'w':
		slot, name = &r.wallet, "wallet"
	default:
		return nil
	}
	if key != name {
		return nil
	}
	return slot
}

func (d *Decoder) build(r *raw, ev *Event) error {
	// The subject names the event in messages as well as we know it so far;
	// it is only formatted when something fails.
	subjKind, subjID := "event", ""
	if r.eventID.kind == kString {
		subjID = r.eventID.str
	}
	fail := func(reason, format string, a ...any) error {
		subj := subjKind
		if subjID != "" {
			subj = fmt.Sprintf("%s %q", subjKind, trunc(subjID))
		}
		return &Error{reason, subj + ": " + fmt.Sprintf(format, a...)}
	}
	req := func(name string, v value) (string, error) {
		switch v.kind {
		case kNone, kNull:
			return "", fail(ReasonMissingField, "%s is required", name)
		case kString:
			return v.str, nil
		default:
			return "", fail(ReasonInvalidField, "%s must be a string, not %s", name, v.kind)
		}
	}
	var err error
	if ev.ID, err = req("event_id", r.eventID); err != nil {
		return err
	}
	if err := idLen("event_id", ev.ID, fail); err != nil {
		return err
	}
	typ, err := req("type", r.typ)
	if err != nil {
		return err
	}
	switch typ {
	case "order":
		ev.Type = Order
	case "opportunity":
		ev.Type = Opportunity
	case "activity":
		ev.Type = Activity
	case "account":
		ev.Type = Account
	default:
		return fail(ReasonUnknownType, "type %q is not one of order, opportunity, activity, account", trunc(typ))
	}
	if ev.AccountID, err = req("account_id", r.accountID); err != nil {
		return err
	}
	if err := idLen("account_id", ev.AccountID, fail); err != nil {
		return err
	}
	if hasControl(ev.AccountID) {
		return fail(ReasonInvalidField, "account_id %q contains a control character", trunc(ev.AccountID))
	}
	at, err := req("occurred_at", r.occurredAt)
	if err != nil {
		return err
	}
	if ev.OccurredAt, err = parseTime(at); err != nil {
		return fail(ReasonInvalidField, "occurred_at %q %v", trunc(at), err)
	}

	switch ev.Type {
	case Order:
		if ev.OrderID, err = req("order_id", r.orderID); err != nil {
			return err
		}
		if err := idLen("order_id", ev.OrderID, fail); err != nil {
			return err
		}
		subjKind, subjID = "order", ev.OrderID
		if ev.Amount, err = d.amount(r.amount, r.currency, true, fail); err != nil {
			return err
		}
		if ev.OpportunityID, err = optID("opportunity_id", r.opportunityID, fail); err != nil {
			return err
		}
	case Opportunity:
		if ev.OpportunityID, err = req("opportunity_id", r.opportunityID); err != nil {
			return err
		}
		if err := idLen("opportunity_id", ev.OpportunityID, fail); err != nil {
			return err
		}
		subjKind, subjID = "opportunity", ev.OpportunityID
		switch v := r.deleted; v.kind {
		case kNone, kNull:
		case kBool:
			ev.Deleted = v.str == "true"
		default:
			return fail(ReasonInvalidField, "deleted must be true or false, not %s", v.kind)
		}
		if ev.Deleted {
			return nil // a deletion needs only the opportunity's id
		}
		if ev.Stage, err = req("stage", r.stage); err != nil {
			return err
		}
		def, ok := d.stages[ev.Stage]
		if !ok {
			return fail(ReasonUnknownStage, "stage %q is not a configured stage (%s)", trunc(ev.Stage), strings.Join(slices.Sorted(maps.Keys(d.stages)), ", "))
		}
		if ev.Amount, err = d.amount(r.amount, r.currency, false, fail); err != nil {
			return err
		}
		ev.ProbPPM = def
		switch r.probability.kind {
		case kNone, kNull:
		case kNumber:
			p, perr := money.ParseRatio(r.probability.str)
			if perr != nil || p < 0 || p > 1_000_000 {
				return fail(ReasonInvalidField, "probability %s is outside 0..1", r.probability.str)
			}
			ev.ProbPPM = p
		default:
			return fail(ReasonInvalidField, "probability must be a number, not %s", r.probability.kind)
		}
	case Activity:
		if ev.Kind, err = req("kind", r.kind); err != nil {
			return err
		}
		if err := nameLen("kind", ev.Kind, fail); err != nil {
			return err
		}
		if ev.OwnerID, err = optID("owner_id", r.ownerID, fail); err != nil {
			return err
		}
	case Account:
		subjKind, subjID = "account", ev.AccountID
		if ev.Name, err = strField("name", r.name, fail); err != nil {
			return err
		}
		if err := nameLen("name", ev.Name.V, fail); err != nil {
			return err
		}
		if ev.Owner, err = strField("owner_id", r.ownerID, fail); err != nil {
			return err
		}
		if o := ev.Owner; o.Set && !o.Null {
			if err := idLen("owner_id", o.V, fail); err != nil {
				return err
			}
		}
		if ev.TierOverride, err = strField("tier_override", r.tierOverride, fail); err != nil {
			return err
		}
		if t := ev.TierOverride; t.Set && !t.Null {
			switch t.V {
			case config.Major, config.Named, config.NonNamed, config.MassMarket:
			default:
				return fail(ReasonInvalidField, "tier_override %q is not one of major, named, non_named, mass_market", trunc(t.V))
			}
		}
		switch v := r.wallet; v.kind {
		case kNone:
		case kNull:
			ev.Wallet = Field[money.Cents]{Set: true, Null: true}
		case kNumber:
			c, perr := money.Parse(v.str)
			if perr != nil {
				return fail(ReasonInvalidField, "wallet %s %v", v.str, perr)
			}
			if c < 0 {
				return fail(ReasonInvalidField, "wallet %s must be >= 0", v.str)
			}
			// The wallet is in the reporting currency, or the event's currency.
			if c, err = d.convert(c, r.currency, fail); err != nil {
				return err
			}
			ev.Wallet = Field[money.Cents]{Set: true, V: c}
		default:
			return fail(ReasonInvalidField, "wallet must be a number or null, not %s", v.kind)
		}
		switch v := r.snoozeUntil; v.kind {
		case kNone:
		case kNull:
			ev.SnoozeUntil = Field[int64]{Set: true, Null: true}
		case kString:
			t, perr := parseTime(v.str)
			if perr != nil {
				return fail(ReasonInvalidField, "snooze_alerts_until %q %v", trunc(v.str), perr)
			}
			ev.SnoozeUntil = Field[int64]{Set: true, V: t}
		default:
			return fail(ReasonInvalidField, "snooze_alerts_until must be an RFC 3339 string or null, not %s", v.kind)
		}
	}
	return nil
}

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
	"unicode/utf8"

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

func (d *Decoder) amount(v, cur value, signed bool, fail func(string, string, ...any) error) (money.Cents, error) {
	switch v.kind {
	case kNone, kNull:
		return 0, fail(ReasonMissingField, "amount is required")
	case kNumber:
	default:
		return 0, fail(ReasonInvalidField, "amount must be a number, not %s", v.kind)
	}
	c, err := money.Parse(v.str)
	if err != nil {
		return 0, fail(ReasonInvalidField, "amount %s %v", v.str, err)
	}
	if !signed && c < 0 {
		return 0, fail(ReasonInvalidField, "amount %s must be >= 0", v.str)
	}
	return d.convert(c, cur, fail)
}

func (d *Decoder) convert(c money.Cents, cur value, fail func(string, string, ...any) error) (money.Cents, error) {
	switch cur.kind {
	case kNone, kNull:
		return c, nil
	case kString:
	default:
		return 0, fail(ReasonInvalidField, "currency must be a string, not %s", cur.kind)
	}
	if cur.str == d.currency {
		return c, nil
	}
	rate, ok := d.fx[cur.str]
	if !ok {
		return 0, fail(ReasonUnknownCurrency, "currency %q has no rate in fx_rates (reporting currency %s)", trunc(cur.str), d.currency)
	}
	out, ok := mulRate(c, rate)
	if !ok || out > money.MaxAbs || out < -money.MaxAbs {
		return 0, fail(ReasonInvalidField, "amount %s %s is too large once converted to %s", c, cur.str, d.currency)
	}
	return out, nil
}

// mulRate returns c × rate rounded half-to-even, and false when the result
// does not fit in an int64.
func mulRate(c money.Cents, rate *big.Rat) (money.Cents, bool) {
	n := new(big.Int).Mul(big.NewInt(int64(c)), rate.Num())
	den := rate.Denom()
	q, r := new(big.Int).QuoRem(n, den, new(big.Int))
	r.Abs(r).Lsh(r, 1)
	if cmp := r.Cmp(den); cmp > 0 || cmp == 0 && q.Bit(0) == 1 {
		q.Add(q, big.NewInt(int64(n.Sign())))
	}
	if !q.IsInt64() {
		return 0, false
	}
	return money.Cents(q.Int64()), true
}

// optID reads an optional id: absent or null gives "", a string must
// satisfy idLen.
func optID(name string, v value, fail func(string, string, ...any) error) (string, error) {
	switch v.kind {
	case kNone, kNull:
		return "", nil
	case kString:
		return v.str, idLen(name, v.str, fail)
	}
	return "", fail(ReasonInvalidField, "%s must be a string, not %s", name, v.kind)
}

// idLen enforces the 1..MaxIDLen bytes of every string id.
func idLen(name, s string, fail func(string, string, ...any) error) error {
	if n := len(s); n == 0 || n > MaxIDLen {
		return fail(ReasonInvalidField, "%s must be 1 to %d bytes, not %d", name, MaxIDLen, n)
	}
	return nil
}

// nameLen enforces the MaxNameLen bytes of names and free text.
func nameLen(name, s string, fail func(string, string, ...any) error) error {
	if n := len(s); n > MaxNameLen {
		return fail(ReasonInvalidField, "%s must be at most %d bytes, not %d", name, MaxNameLen, n)
	}
	return nil
}

func strField(name string, v value, fail func(string, string, ...any) error) (Field[string], error) {
	switch v.kind {
	case kNone:
		return Field[string]{}, nil
	case kNull:
		return Field[string]{Set: true, Null: true}, nil
	case kString:
		return Field[string]{Set: true, V: v.str}, nil
	}
	return Field[string]{}, fail(ReasonInvalidField, "%s must be a string or null, not %s", name, v.kind)
}

// ParseTime reads a time as events carry it (RFC 3339, between the years
// 2000 and 2200) as Unix nanoseconds.
func ParseTime(s string) (int64, error) { return parseTime(s) }

func parseTime(s string) (int64, error) {
	if n, ok := parseTimeFast(s); ok {
		return n, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, errors.New("is not an RFC 3339 timestamp (e.g. 2026-03-01T12:00:00Z)")
	}
	n := t.UnixNano()
	if n < minTime || t.Year() < 2000 {
		return 0, errors.New("is before the year 2000")
	}
	if n > maxTime || t.Year() >= 2200 {
		return 0, errors.New("is after the year 2200")
	}
	return n, nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return true
		}
	}
	return false
}

// trunc keeps echoed values short enough for a log line or a header.
func trunc(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// parseTimeFast handles the common forms 2006-01-02T15:04:05Z and
// 2006-01-02T15:04:05.999999999Z (one to nine decimals) without the
// general parser; anything else (offsets, bad input) falls back.
func parseTimeFast(s string) (int64, bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[len(s)-1] != 'Z' {
		return 0, false
	}
	var frac int64
	switch n := len(s) - 21; {
	case n == -1: // no fraction
	case n >= 1 && n <= 9 && s[19] == '.':
		for _, c := range []byte(s[20 : len(s)-1]) {
			if c < '0' || c > '9' {
				return 0, false
			}
			frac = frac*10 + int64(c-'0')
		}
		for range 9 - n {
			frac *= 10
		}
	default:
		return 0, false
	}
	num := func(i, n int) int {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(0, 4), num(5, 2), num(8, 2)
	hour, minute, sec := num(11, 2), num(14, 2), num(17, 2)
	if year < 2000 || year >= 2200 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 || hour < 0 || minute < 0 || sec < 0 {
		return 0, false
	}
	if day > daysIn(year, month) { // 2026-02-30: let time.Parse reject it
		return 0, false
	}
	secs := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec)
	return secs*int64(time.Second) + frac, true
}

// daysIn returns the number of days in a month of a Gregorian year.
func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil counts the days from 1970-01-01 to a date of a year >= 0
// (Howard Hinnant's days_from_civil).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (m + 9) % 12 // March = 0
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era*146097 + doe - 719468)
}

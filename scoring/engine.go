package scoring

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"maps"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/money"
)

// Engine owns a set of accounts and applies events to them. It is not safe
// for concurrent use: the streaming pipeline runs one engine per partition,
// which also keeps every account's events in log order.
type Engine struct {
	p        *Params
	accounts map[string]*Account
	strs     map[string]string
	// firstVersion is where new accounts start counting versions (see
	// StartVersionsAt).
	firstVersion uint64
}

// NewEngine returns an empty engine.
func NewEngine(p *Params) *Engine {
	return &Engine{p: p, accounts: map[string]*Account{}, strs: map[string]string{}}
}

// Params returns the engine's compiled configuration.
func (e *Engine) Params() *Params { return e.p }

// Len returns the number of accounts.
func (e *Engine) Len() int { return len(e.accounts) }

// Account returns the account with id, or nil.
func (e *Engine) Account(id string) *Account { return e.accounts[id] }

// Put adds or replaces an account, as when restoring from a changelog.
func (e *Engine) Put(a *Account) { e.accounts[a.ID] = a }

// Remove forgets an account.
func (e *Engine) Remove(id string) { delete(e.accounts, id) }

// IDs returns every account id in sorted order.
func (e *Engine) IDs() []string {
	return slices.Sorted(maps.Keys(e.accounts))
}

// intern returns one shared copy of repeated strings (stages, owners,
// activity kinds) so a million events do not hold a million copies. It is
// bounded so hostile input cannot grow it without limit.
func (e *Engine) intern(s string) string {
	if v, ok := e.strs[s]; ok {
		return v
	}
	s = strings.Clone(s) // event strings alias the input buffer
	if len(e.strs) < 1<<16 && len(s) <= 64 {
		e.strs[s] = s
	}
	return s
}

// Output collects what an Apply or Evaluate produced. Reuse it across calls
// with Reset to avoid allocations.
type Output struct {
	Changes []TierChange
	Alerts  []Alert
	// Err says why the last Apply returned Rejected: an *event.Error with
	// reason limit or out_of_range.
	Err error
}

// Reset empties o, keeping its capacity.
func (o *Output) Reset() {
	o.Changes = o.Changes[:0]
	o.Alerts = o.Alerts[:0]
	o.Err = nil
}

// Result says what Apply did with an event.
type Result uint8

// Results of Apply.
const (
	Applied Result = iota + 1
	Duplicate
	// Rejected: applying the event would exceed a limit or take a figure
	// beyond ±MaxFigure; Output.Err says which, and nothing changed (the
	// event id is not remembered either, so a corrected resend applies).
	Rejected
)

// EventTime, passed to Apply as asOf, evaluates the account at the largest
// occurred_at seen for that account so far: the replay clock. It keeps each
// account's history independent of how other accounts' events interleave.
const EventTime int64 = 0

// Apply applies one valid event and re-evaluates its account at asOf (Unix
// ns, or EventTime). It returns the account and Duplicate when the event id
// was among the account's last 16, or Rejected (see Output.Err) when the
// event would break a bound; in both cases nothing changed, and on
// Rejected the account is nil if it did not exist. Every applied event
// adds one snapshot version.
func (e *Engine) Apply(ev *event.Event, asOf int64, out *Output) (*Account, Result) {
	a := e.accounts[ev.AccountID]
	h := hashID(ev.ID)
	if a != nil && a.seenBefore(h) {
		return a, Duplicate
	}
	check := a
	if check == nil {
		check = &noAccount
	}
	if err := check.admit(e.p, ev); err != nil {
		out.Err = err
		return a, Rejected
	}
	if a == nil {
		a = &Account{ID: strings.Clone(ev.AccountID), Version: e.firstVersion}
		e.accounts[a.ID] = a
	}
	a.remember(h)
	// A touch can end a neglect that nobody watched happen (the process was
	// down, or this is a replay): judge the account at the touch's own time
	// first, so the episode is recorded whenever the processor looks.
	// The figures are only worked out when the cheap conditions of
	// neglected hold.
	if isTouch(ev) && a.Tier != TierNone && a.alertMoment == 0 && ev.OccurredAt > a.LastTouchAt() &&
		ev.OccurredAt-a.LastTouchAt() > e.p.tiers[a.Tier].neglect && a.snooze <= ev.OccurredAt {
		f := a.Figures(e.p, ev.OccurredAt)
		if a.neglected(e.p, &f, ev.OccurredAt) {
			e.openAlert(a, &f, ev.OccurredAt, alertVersion(a.Version+1, phaseBefore), out)
		}
	}
	a.mutate(ev, e.intern)
	a.Version++
	if asOf == EventTime {
		asOf = a.lastAt
	}
	e.evaluate(a, asOf, ev, out)
	return a, Applied
}

// noAccount stands for an account that does not exist yet when an event
// is checked against the bounds; it is never changed.
var noAccount Account

// Evaluate re-evaluates an account at asOf without an event, as the clock
// moves. It returns true, and adds a snapshot version, when anything in the
// snapshot other than as_of changed.
func (e *Engine) Evaluate(a *Account, asOf int64, out *Output) bool {
	if a.Tier == TierNone {
		return false
	}
	if e.evaluate(a, asOf, nil, out) {
		a.Version++
		return true
	}
	return false
}

// Reemit re-evaluates a at asOf for a snapshot that is emitted again at a
// new clock (the end of a replay, the end of a stream's backfill). The
// version always moves on: when nothing but as_of changed, the new as_of
// alone makes it a new snapshot, so no (account, version) is ever emitted
// with two different contents.
func (e *Engine) Reemit(a *Account, asOf int64, out *Output) {
	if a.Tier != TierNone && !e.Evaluate(a, asOf, out) {
		a.Version++
	}
}

// StartVersionsAt makes accounts the engine creates from now on start
// counting versions after n instead of 0 (see SkipVersions).
func (e *Engine) StartVersionsAt(n uint64) { e.firstVersion = n }

// SkipVersions moves a's version on by n without changing anything else.
// A stream processor that takes over an account after a crash skips past
// every version the previous owner may have emitted without recording it,
// since those may show figures at another clock.
func (a *Account) SkipVersions(n uint64) { a.Version += n }

// evaluate moves the tier, opens and resolves alerts, and returns whether
// the snapshot content changed. ev is the cause, or nil for the clock.
func (e *Engine) evaluate(a *Account, asOf int64, ev *event.Event, out *Output) bool {
	return e.judge(a, asOf, ev, nil, out)
}

// judge is evaluate with the capacity ranking r applied, when not nil.
func (e *Engine) judge(a *Account, asOf int64, ev *event.Event, r *Ranking, out *Output) bool {
	p := e.p
	f := a.Figures(p, asOf)
	if f.stale {
		a.forgetClosed(p, asOf) // changes no figure at asOf or later
	}
	version := a.Version
	causeAt, eventID := asOf, ""
	if ev != nil {
		causeAt, eventID = ev.OccurredAt, ev.ID
	} else {
		version++ // a clock-caused change becomes the next version
	}
	value := f.Value()
	q, kind := p.nextTier(a.qual, a.override, value)
	next, why, from, rv := p.hold(a, q, kind, value, r)
	if why != reasonNone {
		a.reasonKind, a.reasonFrom, a.reasonValue = why, from, rv
	}
	if next != a.Tier {
		out.Changes = append(out.Changes, TierChange{
			AccountID: a.ID, Version: version, ChangedAt: causeAt,
			From: a.Tier, To: next, Reason: p.reason(a.reasonKind, a.reasonValue, a.reasonFrom, next),
			Current: f.Current, Potential: f.Potential, EventID: strings.Clone(eventID),
			ByCapacity: why == reasonCapacity,
		})
	}
	a.qual, a.Tier = q, next
	neglected := a.neglected(p, &f, asOf)
	if a.alertMoment != 0 && (!neglected || a.alertTouch != a.LastTouchAt()) {
		e.resolveAlert(a, &f, causeAt, alertVersion(version, phaseResolve), out)
	}
	if neglected && a.alertMoment == 0 {
		e.openAlert(a, &f, asOf, alertVersion(version, phaseOpen), out)
	}
	d := a.contentDigest(&f, neglected)
	changed := d != a.digest
	a.digest = d
	return changed
}

// contentDigest hashes everything a snapshot shows except as_of and
// version, to tell whether a clock-driven re-evaluation changed anything.
func (a *Account) contentDigest(f *Figures, neglected bool) uint64 {
	// A word-at-a-time multiply-xorshift mix. The digest is stored in the
	// changelog, so this function is part of the state format: keep it.
	h := uint64(14695981039346656037)
	mix := func(v uint64) {
		h = (h ^ v) * 0x9E3779B97F4A7C15
		h ^= h >> 29
	}
	mix(uint64(f.Current))
	mix(uint64(f.Potential))
	mix(uint64(f.WeightedPipeline))
	mix(uint64(f.OpenOpps))
	mix(uint64(a.wallet))
	mix(uint64(a.LastTouchAt()))
	mix(uint64(a.reasonValue))
	flags := uint64(a.Tier) | uint64(a.reasonKind)<<8 | uint64(a.reasonFrom)<<16 | uint64(a.override)<<24
	if a.qual != a.Tier {
		// Only capacity separates them: without caps digests are as before.
		flags |= uint64(a.qual) << 40
	}
	if a.hasWallet {
		flags |= 1 << 32
	}
	if neglected {
		flags |= 1 << 33
	}
	mix(flags)
	mix(hashID(a.owner))
	return h
}

// Alert kinds and statuses.
const (
	KindNeglected  = "neglected"
	StatusOpen     = "open"
	StatusResolved = "resolved"
)

// Alert record versions order the records of one alert id: the account's
// snapshot version in the high bits, and within one Apply the phase: an
// episode recorded before the event applies, then a resolution, then an
// opening. A later record of the same alert always has a higher version,
// whichever instance writes it, so ClickHouse keeps the right status.
const (
	phaseBefore = iota
	phaseResolve
	phaseOpen
)

func alertVersion(snapshotVersion uint64, phase uint64) uint64 { return snapshotVersion<<2 | phase }

func (e *Engine) openAlert(a *Account, f *Figures, asOf int64, version uint64, out *Output) {
	lt := a.LastTouchAt()
	// The account became neglected when its touch went stale, or when a
	// snooze covering that time ended, whichever is later: an alert never
	// opens inside a snooze, and one re-opened after a snooze is a new
	// episode with its own id. neglected guarantees snooze <= asOf.
	a.alertMoment = max(lt+e.p.tiers[a.Tier].neglect, a.snooze)
	a.alertTouch = lt
	al := e.alert(a, f, StatusOpen, 0, asOf)
	al.Version = version
	out.Alerts = append(out.Alerts, al)
}

func (e *Engine) resolveAlert(a *Account, f *Figures, at int64, version uint64, out *Output) {
	// A late event can end an episode "before" it began (the clock ran
	// ahead of the account's own events); it never resolves before it opened.
	at = max(at, a.alertMoment)
	al := e.alert(a, f, StatusResolved, at, at)
	al.Version = version
	// The record describes the episode that ends: its moment and touch.
	al.LastTouchAt = a.alertTouch
	al.DaysSinceTouch = int((at - a.alertTouch) / int64(24*time.Hour))
	a.alertMoment, a.alertTouch = 0, 0
	out.Alerts = append(out.Alerts, al)
}

func (e *Engine) alert(a *Account, f *Figures, status string, resolvedAt, now int64) Alert {
	lt := a.LastTouchAt()
	moment := a.alertMoment
	return Alert{
		AlertID:        AlertID(a.ID, KindNeglected, moment),
		AccountID:      a.ID,
		Kind:           KindNeglected,
		Status:         status,
		OpenedAt:       moment,
		ResolvedAt:     resolvedAt,
		Tier:           a.Tier,
		OwnerID:        a.owner,
		Potential:      f.Potential,
		LastTouchAt:    lt,
		AccountName:    a.name,
		LastTouchKind:  a.touchKind,
		DaysSinceTouch: int((now - lt) / int64(24*time.Hour)),
		Link:           e.link(a),
	}
}

func (e *Engine) link(a *Account) string {
	t := e.p.cfg.AlertLinkTemplate
	if t == "" {
		return ""
	}
	return strings.NewReplacer("{account_id}", url.PathEscape(a.ID), "{owner_id}", url.PathEscape(a.owner)).Replace(t)
}

// AlertID is the deterministic id of docs/model.md: the first 128 bits of
// SHA-256 over the account id, the kind and the moment the account became
// neglected (Unix ns, big-endian), in hex.
func AlertID(accountID, kind string, moment int64) string {
	var buf [160]byte // on the stack for ids up to ~140 bytes
	b := append(append(append(append(buf[:0], accountID...), 0), kind...), 0)
	b = binary.BigEndian.AppendUint64(b, uint64(moment))
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// TierReason renders why the account holds its tier.
func (e *Engine) TierReason(a *Account) string {
	to := a.Tier
	return e.p.reason(a.reasonKind, a.reasonValue, a.reasonFrom, to)
}

// Snapshot builds the snapshot of docs/model.md of a at asOf. It does not change a.
func (e *Engine) Snapshot(a *Account, asOf int64) Snapshot {
	p := e.p
	f := a.Figures(p, asOf)
	tp := &p.tiers[a.Tier]
	s := Snapshot{
		AccountID: a.ID, Version: a.Version, AsOf: asOf,
		Tier: a.Tier, TierReason: e.TierReason(a), Quadrant: p.quadrant(&f),
		CurrentValue: f.Current, PotentialValue: f.Potential, WeightedPipeline: f.WeightedPipeline,
		Wallet: a.wallet, HasWallet: a.hasWallet,
		CoverageModel: tp.coverage, OwnerID: a.owner, LastTouchAt: a.LastTouchAt(),
		Neglected: a.neglected(p, &f, asOf), OpenOpportunities: f.OpenOpps, Overridden: a.override != TierNone,
		Name: a.name, Qualified: a.qual,
	}
	if a.hasWallet && a.wallet > 0 {
		s.ShareOfWallet, s.HasShare = ratio(float64(f.Current)/float64(a.wallet)), true
	}
	if tp.shareGoal {
		s.GoalMetric, s.GoalTarget = "share_of_wallet", tp.target
		if s.HasShare {
			s.GoalActual, s.GoalAttainment, s.HasGoalActual = s.ShareOfWallet, ratio(float64(f.Current)/float64(a.wallet)/tp.target), true
		}
	} else {
		s.GoalMetric, s.GoalTarget = "absolute_sales", tp.target
		s.GoalActual, s.GoalAttainment, s.HasGoalActual = f.Current.Float(), ratio(float64(f.Current)/float64(tp.targetCents)), true
	}
	switch {
	case !s.HasGoalActual:
		s.GoalStatus = GoalWalletUnknown
	case s.GoalAttainment >= 1:
		s.GoalStatus = GoalMet
	default:
		s.GoalStatus = GoalBehind
	}
	return s
}

func (p *Params) quadrant(f *Figures) string {
	hc, hp := f.Current >= p.currentHigh, f.Potential >= p.potentialHigh
	switch {
	case hc && hp:
		return HighCurrentHighPotential
	case hc:
		return HighCurrentLowPotential
	case hp:
		return LowCurrentHighPotential
	}
	return LowCurrentLowPotential
}

// ratio rounds to four decimals, the precision ratios are reported with.
func ratio(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// Snapshot is an account's published state (docs/model.md, Outputs).
type Snapshot struct {
	AccountID         string
	Version           uint64
	AsOf              int64
	Tier              Tier
	TierReason        string
	Quadrant          string
	CurrentValue      money.Cents
	PotentialValue    money.Cents
	WeightedPipeline  money.Cents
	Wallet            money.Cents
	HasWallet         bool
	ShareOfWallet     float64
	HasShare          bool
	GoalMetric        string
	GoalTarget        float64
	GoalActual        float64
	GoalAttainment    float64
	HasGoalActual     bool
	GoalStatus        string
	CoverageModel     string
	OwnerID           string
	LastTouchAt       int64
	Neglected         bool
	OpenOpportunities int
	Overridden        bool
	Name              string // not a snapshot column; used by the HTTP API
	// Qualified is the tier the account's value qualifies for, above Tier
	// while a capped tier has no place for it; not a snapshot column.
	Qualified Tier
}

// TierChange records one move between tiers (docs/model.md, Outputs).
type TierChange struct {
	AccountID string
	Version   uint64
	ChangedAt int64
	From, To  Tier
	Reason    string
	Current   money.Cents
	Potential money.Cents
	EventID   string // empty when the clock caused the change
	// ByCapacity: the capacity ranking moved the account (not an output
	// field; it feeds the metrics).
	ByCapacity bool
}

// Alert is one neglect alert record (docs/model.md, Outputs).
type Alert struct {
	AlertID        string
	AccountID      string
	Kind           string
	Status         string
	OpenedAt       int64
	ResolvedAt     int64 // 0 while open
	Tier           Tier
	OwnerID        string
	Potential      money.Cents
	LastTouchAt    int64
	AccountName    string
	LastTouchKind  string
	DaysSinceTouch int
	Link           string
	// Version orders the records of one alert id (later is higher); it is
	// derived from the account's snapshot version, so it is deterministic.
	Version uint64
}

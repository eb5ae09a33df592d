package scoring

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/pyramid-crm/pyramid/money"
)

// The JSON forms below are written by hand, field by field in docs/model.md's
// order: the output is byte-for-byte deterministic, money always has two
// decimals, and a snapshot costs no reflection on the hot path.

// TimeFormat is how times appear in outputs: RFC 3339, UTC, seconds.
const TimeFormat = "2006-01-02T15:04:05Z"

// FormatTime renders a Unix-ns time for outputs.
func FormatTime(ns int64) string { return string(appendTime(nil, ns)) }

// appendTime appends ns in TimeFormat without time.Format's generality.
func appendTime(b []byte, ns int64) []byte {
	const day = int64(24 * time.Hour / time.Second)
	secs := floorDiv(ns, int64(time.Second))
	y, mo, d := civilDate(floorDiv(secs, day))
	if y < 0 || y > 9999 {
		return time.Unix(0, ns).UTC().AppendFormat(b, TimeFormat)
	}
	sod := secs - floorDiv(secs, day)*day
	two := func(b []byte, v int64) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }
	b = two(two(b, y/100), y%100)
	b = two(append(b, '-'), mo)
	b = two(append(b, '-'), d)
	b = two(append(b, 'T'), sod/3600)
	b = two(append(b, ':'), sod/60%60)
	b = two(append(b, ':'), sod%60)
	return append(b, 'Z')
}

type jw struct{ b []byte }

// key appends what precedes a value: the literal k, which is `{"name":` for
// an object's first field and `,"name":` for the others (one copy each).
func (w *jw) key(k string) { w.b = append(w.b, k...) }

func (w *jw) str(k, v string)               { w.key(k); w.b = appendString(w.b, v) }
func (w *jw) money(k string, c money.Cents) { w.key(k); w.b = c.Append(w.b) }
func (w *jw) uint(k string, v uint64)       { w.key(k); w.b = strconv.AppendUint(w.b, v, 10) }
func (w *jw) int(k string, v int64)         { w.key(k); w.b = strconv.AppendInt(w.b, v, 10) }
func (w *jw) bool(k string, v bool)         { w.key(k); w.b = strconv.AppendBool(w.b, v) }
func (w *jw) time(k string, ns int64) {
	w.key(k)
	w.b = append(appendTime(append(w.b, '"'), ns), '"')
}
func (w *jw) ratio(k string, v float64, ok bool) {
	w.key(k)
	if !ok {
		w.b = append(w.b, "null"...)
		return
	}
	w.b = strconv.AppendFloat(w.b, v, 'f', 4, 64)
}
func (w *jw) null(k string) { w.key(k); w.b = append(w.b, "null"...) }

// AppendJSON appends the snapshot as one JSON object.
func (s *Snapshot) AppendJSON(b []byte) []byte {
	w := jw{b}
	w.str(`{"account_id":`, s.AccountID)
	w.uint(`,"version":`, s.Version)
	w.time(`,"as_of":`, s.AsOf)
	w.str(`,"tier":`, s.Tier.String())
	w.str(`,"tier_reason":`, s.TierReason)
	w.str(`,"quadrant":`, s.Quadrant)
	w.money(`,"current_value":`, s.CurrentValue)
	w.money(`,"potential_value":`, s.PotentialValue)
	w.money(`,"weighted_pipeline":`, s.WeightedPipeline)
	if s.HasWallet {
		w.money(`,"wallet":`, s.Wallet)
	} else {
		w.null(`,"wallet":`)
	}
	w.ratio(`,"share_of_wallet":`, s.ShareOfWallet, s.HasShare)
	w.str(`,"goal_metric":`, s.GoalMetric)
	if s.GoalMetric == "absolute_sales" {
		w.money(`,"goal_target":`, money.Cents(s.GoalTarget*100+0.5))
		if s.HasGoalActual {
			w.money(`,"goal_actual":`, s.CurrentValue)
		} else {
			w.null(`,"goal_actual":`)
		}
	} else {
		w.ratio(`,"goal_target":`, s.GoalTarget, true)
		w.ratio(`,"goal_actual":`, s.GoalActual, s.HasGoalActual)
	}
	w.ratio(`,"goal_attainment":`, s.GoalAttainment, s.HasGoalActual)
	w.str(`,"goal_status":`, s.GoalStatus)
	w.str(`,"coverage_model":`, s.CoverageModel)
	w.str(`,"owner_id":`, s.OwnerID)
	w.time(`,"last_touch_at":`, s.LastTouchAt)
	w.bool(`,"neglected":`, s.Neglected)
	w.int(`,"open_opportunities":`, int64(s.OpenOpportunities))
	w.bool(`,"overridden":`, s.Overridden)
	return append(w.b, '}')
}

// AppendJSON appends the tier change as one JSON object.
func (c *TierChange) AppendJSON(b []byte) []byte {
	w := jw{b}
	w.str(`{"account_id":`, c.AccountID)
	w.uint(`,"version":`, c.Version)
	w.time(`,"changed_at":`, c.ChangedAt)
	w.str(`,"from_tier":`, c.From.String())
	w.str(`,"to_tier":`, c.To.String())
	w.str(`,"reason":`, c.Reason)
	w.money(`,"current_value":`, c.Current)
	w.money(`,"potential_value":`, c.Potential)
	w.str(`,"event_id":`, c.EventID)
	return append(w.b, '}')
}

// AppendJSON appends the alert as one JSON object.
func (a *Alert) AppendJSON(b []byte) []byte {
	w := jw{b}
	w.str(`{"alert_id":`, a.AlertID)
	w.str(`,"account_id":`, a.AccountID)
	w.str(`,"kind":`, a.Kind)
	w.str(`,"status":`, a.Status)
	w.time(`,"opened_at":`, a.OpenedAt)
	if a.ResolvedAt != 0 {
		w.time(`,"resolved_at":`, a.ResolvedAt)
	} else {
		w.null(`,"resolved_at":`)
	}
	w.str(`,"tier":`, a.Tier.String())
	w.str(`,"owner_id":`, a.OwnerID)
	w.money(`,"potential_value":`, a.Potential)
	w.time(`,"last_touch_at":`, a.LastTouchAt)
	w.str(`,"account_name":`, a.AccountName)
	w.str(`,"last_touch_kind":`, a.LastTouchKind)
	w.int(`,"days_since_touch":`, int64(a.DaysSinceTouch))
	w.str(`,"link":`, a.Link)
	return append(w.b, '}')
}

const hexDigits = "0123456789abcdef"

// jsonSafe marks ASCII bytes a JSON string holds as they are.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString appends s as a JSON string, escaping as encoding/json does
// (without HTML escaping) and replacing invalid UTF-8.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		// Most strings are plain ASCII: skip it in a tight loop.
		for i < len(s) && jsonSafe[s[i]] {
			i++
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

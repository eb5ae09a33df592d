package inputs

// What each change means for each event type (docs/events.md, "What each
// change means"): which image is read, and which events come out.

import (
	"github.com/tidwall/gjson"

	"github.com/pyramid-crm/pyramid/event"
)

// plain maps a record of format json: the (unwrapped) value is the row.
// A row flattened by Debezium's ExtractNewRecordState with
// delete.handling.mode=rewrite carries "__deleted": "true" on deletes.
func (b *builder) plain() ([]Event, error) {
	v := b.v
	v.row = v.body
	if d := v.doc.get(v.row, "__deleted", "__deleted").result(); d.Type == gjson.True || d.Str == "true" {
		b.v.side = sideBefore
		return b.remove()
	}
	b.v.side = sideRow
	return b.apply()
}

// debezium maps a change-event envelope by its op.
func (b *builder) debezium() ([]Event, error) {
	v := b.v
	op := v.doc.get(v.body, "op", "op").result()
	if op.Type != gjson.String {
		return b.out, v.in.errorf(event.ReasonMissingField, "op is %s: not a Debezium change event (for records flattened by ExtractNewRecordState use format: json)", describe(op))
	}
	v.op = op.Str
	switch v.op {
	case "c", "r":
		return b.after()
	case "u":
		switch v.in.typ {
		case event.Order:
			return b.orderUpdate()
		case event.Opportunity:
			return b.oppUpdate()
		}
		return b.after()
	case "d":
		if err := b.side("before", sideBefore); err != nil {
			return b.out, err
		}
		return b.remove()
	case "t", "m": // a truncate, or a logical-decoding message: no row
		return b.out, nil
	}
	return b.out, v.in.errorf(event.ReasonInvalidField, "op %q is not one of c, u, d, r, t, m", trunc(v.op))
}

func (b *builder) after() ([]Event, error) {
	if err := b.side("after", sideAfter); err != nil {
		return b.out, err
	}
	return b.apply()
}

// side selects the before or after image as the row.
func (b *builder) side(name string, s side) error {
	v := b.v
	row := v.doc.get(v.body, name, name)
	if !row.isObject() {
		hint := ""
		if s == sideBefore {
			hint = "; the table's REPLICA IDENTITY (Postgres) must not be NOTHING"
		}
		return v.in.errorf(event.ReasonMissingField, "%s is %s in an op %q change%s", name, describe(row.result()), v.op, hint)
	}
	v.row, v.side = row, s
	return nil
}

// orderUpdate maps an update of an order row. Orders are signed amounts
// that add up, so the change is the new row minus the old one: a reversal
// of the before image and the after image, or nothing when neither the
// amount nor anything else Pyramid reads changed.
func (b *builder) orderUpdate() ([]Event, error) {
	if err := b.side("after", sideAfter); err != nil {
		return b.out, err
	}
	after, err := b.fields()
	if err != nil {
		return b.out, err
	}
	if err := b.side("before", sideBefore); err != nil {
		return b.out, err
	}
	before, err := b.fields()
	if err != nil {
		return b.out, err
	}
	if sameValues(before, after) {
		return b.out, nil
	}
	// v.row is still the before image: a refusal of either event names
	// the before image's paths.
	if b.out, err = b.emit(before, "-r", reversed); err != nil {
		return b.out, err
	}
	return b.emit(after, "", asIs)
}

// oppUpdate maps an update of an opportunity row: an upsert from the after
// image, preceded, when the before image names another account, by the
// opportunity's removal from that account (it was moved).
func (b *builder) oppUpdate() ([]Event, error) {
	v, in := b.v, b.v.in
	before := v.doc.get(v.body, "before", "before")
	after := v.doc.get(v.body, "after", "after")
	if err := b.side("after", sideAfter); err != nil {
		return b.out, err
	}
	vals, err := b.fields()
	if err != nil {
		return b.out, err
	}
	if before.isObject() {
		v.row, v.side = before, sideBefore
		old, _ := v.lookup(in.account)
		v.row, v.side = after, sideAfter
		newAcc := vals[in.index(in.account)].text
		if (old.Type == gjson.String || old.Type == gjson.Number) && textOf(old) != newAcc {
			moved := b.newVals()
			for i := range in.fields {
				switch f := &in.fields[i]; {
				case f == in.account:
					moved[i] = value{kind: vText, text: textOf(old)}
				case f == in.occurred, f.name == "opportunity_id":
					moved[i] = vals[i]
				}
			}
			if b.out, err = b.emit(moved, "-m", deleted); err != nil {
				return b.out, err
			}
		}
	}
	return b.emit(vals, "", asIs)
}

// remove maps a deletion of the row in v.row (the before image).
func (b *builder) remove() ([]Event, error) {
	switch b.v.in.typ {
	case event.Order: // the order never happened: reverse its amount
		vals, err := b.fields()
		if err != nil {
			return b.out, err
		}
		return b.emit(vals, "", reversed)
	case event.Opportunity, event.Account:
		return b.deletion()
	}
	return b.out, nil // an activity happened even if its record is gone
}

// apply maps the row as it is now.
func (b *builder) apply() ([]Event, error) {
	vals, err := b.fields()
	if err != nil {
		return b.out, err
	}
	return b.emit(vals, "", asIs)
}

// index returns the position of f in in.fields.
func (in *input) index(f *field) int {
	for i := range in.fields {
		if &in.fields[i] == f {
			return i
		}
	}
	return -1
}

// textOf is a JSON string or number as an id's text.
func textOf(r gjson.Result) string {
	if r.Type == gjson.String {
		return r.Str
	}
	return r.Raw
}

func sameValues(a, b []value) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// deletion maps a deleted opportunity (removed under last-writer-wins) or
// account (its mapped profile fields cleared). Only the ids are read from
// the before image; the time is the latest of the image's own time and
// the database's commit time, so a deletion never loses to the state it
// removes.
func (b *builder) deletion() ([]Event, error) {
	v, in := b.v, b.v.in
	vals := b.newVals()
	var at int64
	for i := range in.fields {
		f := &in.fields[i]
		switch {
		case f == in.occurred:
			if r, _ := v.lookup(f); f.where == inTimestamp || r.Exists() && r.Type != gjson.Null {
				// The image's own time, when it has one.
				val, err := b.read(f)
				if err != nil {
					return b.out, err
				}
				at = val.ns
			}
		case f.name == "account_id", f.name == "opportunity_id":
			val, err := b.read(f)
			if err != nil {
				return b.out, err
			}
			vals[i] = val
		case in.typ == event.Account && f.nullable:
			vals[i] = value{kind: vNull}
		}
	}
	if ms := v.source(srcTS).result(); ms.Type == gjson.Number {
		if ns, err := epoch(intOf(ms), unitMilli); err == "" {
			at = max(at, ns)
		}
	}
	if at == 0 && v.rec.TimeMs > 0 {
		at, _ = epoch(v.rec.TimeMs, unitMilli)
	}
	if at == 0 {
		return b.out, b.fieldErr(event.ReasonMissingField, in.occurred, "is absent, and the record has no source.ts_ms or timestamp to date the deletion")
	}
	for i := range in.fields {
		if &in.fields[i] == in.occurred {
			vals[i] = value{kind: vTime, ns: at}
		}
	}
	return b.emit(vals, "", deleted)
}

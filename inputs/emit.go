package inputs

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/pyramid-crm/pyramid/event"
)

// builder maps one record into events appended to out.
type builder struct {
	m   *Mapper
	v   *view
	out []Event
}

// mode is how an image becomes an event.
type mode uint8

const (
	asIs     mode = iota
	reversed      // an order's amount negated: it is taken back
	deleted       // an opportunity removed
)

// emit writes one native event from vals, validates it with the event
// decoder and appends it. suffix tells apart the events of one change.
func (b *builder) emit(vals []value, suffix string, md mode) ([]Event, error) {
	in := b.v.in
	id, err := b.eventID(suffix)
	if err != nil {
		return b.out, err
	}
	buf := make([]byte, 0, 192)
	buf = append(buf, `{"event_id":`...)
	buf = gjson.AppendJSONString(buf, id)
	buf = append(buf, `,"type":"`...)
	buf = append(buf, in.typ.String()...)
	buf = append(buf, '"')
	for i := range in.fields {
		f := &in.fields[i]
		if vals[i].kind == vAbsent {
			continue
		}
		buf = append(buf, ',', '"')
		buf = append(buf, f.name...) // field names are plain ASCII
		buf = append(buf, '"', ':')
		buf = appendValue(buf, vals[i], md == reversed && f.name == "amount")
	}
	if md == deleted && in.typ == event.Opportunity {
		buf = append(buf, `,"deleted":true`...)
	}
	buf = append(buf, '}')
	if err := b.m.dec.DecodeTo(buf, &b.m.ev); err != nil {
		return b.out, b.decorate(err)
	}
	b.out = append(b.out, Event{AccountID: strings.Clone(b.m.ev.AccountID), JSON: buf})
	return b.out, nil
}

// decorate adds the input and the paths of the fields an event decoder
// rejection mentions, so the reader knows which column to look at.
func (b *builder) decorate(err error) error {
	reason, msg := event.ReasonOf(err), err.Error()
	if reason == "" {
		reason = event.ReasonInvalidField
	}
	var paths []string
	for i := range b.v.in.fields {
		f := &b.v.in.fields[i]
		if containsWord(msg, f.name) {
			paths = append(paths, f.name+" <- "+b.v.where(f))
		}
	}
	if len(paths) > 0 {
		msg += " (" + strings.Join(paths, ", ") + ")"
	}
	return b.v.in.errorf(reason, "%s", msg)
}

// containsWord reports whether w occurs in s as a whole identifier.
func containsWord(s, w string) bool {
	ident := func(c byte) bool {
		return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	for i := 0; ; {
		j := strings.Index(s[i:], w)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(w)
		if (j == 0 || !ident(s[j-1])) && (end == len(s) || !ident(s[end])) {
			return true
		}
		i = j + 1
	}
}

// eventID derives the event_id of one mapped event. It must be the same
// every time the same change is delivered, whatever Kafka offset it has:
//
//   - a declared event_id path: the input, the record key, the op and the
//     declared value (a change id or version column);
//   - Debezium: the source table, the record key, the op and the change's
//     position in the database log (Postgres source.lsn, MySQL
//     source.file/pos/row, SQL Server source.change_lsn, Oracle
//     source.scn, else source.ts_ms);
//   - plain JSON without a declared path: the Kafka position, the only
//     identity such a record has (a re-delivered copy is a new event).
//
// The parts are hashed (SHA-256, 128 bits in hex) so the id stays within
// the 128-byte bound whatever the keys look like.
func (b *builder) eventID(suffix string) (string, error) {
	v := b.v
	h := sha256.New()
	var n [8]byte
	part := func(s string) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	switch f := v.in.eventID; {
	case f != nil:
		var raw string
		switch f.where {
		case inTimestamp:
			raw = strconv.FormatInt(v.rec.TimeMs, 10)
		default:
			r, _ := v.lookup(f)
			if !r.Exists() || r.Type == gjson.Null {
				return "", b.fieldErr(event.ReasonMissingField, f, "is %s", describe(r))
			}
			raw = r.Raw
		}
		part("declared")
		part(v.in.topic)
		part(v.key.Raw)
		part(v.op)
		part(raw)
	case v.in.debezium:
		part("debezium")
		part(b.table())
		part(v.key.Raw)
		part(v.op)
		part(b.position())
	default:
		part("kafka")
		part(v.rec.Topic)
		part(strconv.Itoa(v.rec.Partition))
		part(strconv.FormatInt(v.rec.Offset, 10))
	}
	part(suffix)
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:16]), nil
}

// source is what a Debezium envelope's source block says about where a
// change comes from, read in one pass.
type source struct {
	db, schema, table                               gjson.Result
	lsn, file, pos, row, changeLSN, serial, scn, ts gjson.Result
}

func readSource(body gjson.Result) *source {
	s := &source{}
	body.Get("source").ForEach(func(k, v gjson.Result) bool {
		if v.Type == gjson.Null {
			return true
		}
		switch k.Str {
		case "db":
			s.db = v
		case "schema":
			s.schema = v
		case "table":
			s.table = v
		case "lsn":
			s.lsn = v
		case "file":
			s.file = v
		case "pos":
			s.pos = v
		case "row":
			s.row = v
		case "change_lsn":
			s.changeLSN = v
		case "event_serial_no":
			s.serial = v
		case "scn":
			s.scn = v
		case "ts_ms":
			s.ts = v
		}
		return true
	})
	return s
}

// source returns the change's source block, read once per record.
func (v *view) source() *source {
	if v.src == nil {
		v.src = readSource(v.body)
	}
	return v.src
}

// table names the source table of a Debezium change: db.schema.table as
// the source block gives it, or the topic when it gives none.
func (b *builder) table() string {
	src := b.v.source()
	if src.table.Type != gjson.String {
		return "topic:" + b.v.in.topic
	}
	var parts []string
	for _, r := range []gjson.Result{src.db, src.schema, src.table} {
		if r.Type == gjson.String {
			parts = append(parts, r.Str)
		}
	}
	return strings.Join(parts, ".")
}

// position is where a Debezium change sits in the database's log.
func (b *builder) position() string {
	src := b.v.source()
	switch {
	case src.lsn.Exists(): // Postgres (and Db2)
		return "lsn=" + src.lsn.Raw
	case src.file.Exists() && src.pos.Exists(): // MySQL, MariaDB binlog; row numbers a multi-row event
		return "binlog=" + src.file.Raw + ":" + src.pos.Raw + ":" + src.row.Raw
	case src.changeLSN.Exists(): // SQL Server
		return "change_lsn=" + src.changeLSN.Raw + ":" + src.serial.Raw
	case src.scn.Exists(): // Oracle
		return "scn=" + src.scn.Raw
	case src.ts.Exists():
		return "ts_ms=" + src.ts.Raw
	}
	// No position at all: the Kafka one is the best there is.
	r := b.v.rec
	return "kafka=" + r.Topic + "/" + strconv.Itoa(r.Partition) + "/" + strconv.FormatInt(r.Offset, 10)
}

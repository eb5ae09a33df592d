package inputs

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"unsafe"

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

// emit writes one native event from vals, validates it as the event
// decoder would and appends it. suffix tells apart the events of one
// change. The members are validated as the values they are written from
// (event.Members), which is the decoder's answer for the text without
// reading it back; a text that may not read back as them (a string that
// is not UTF-8, a number outside JSON's grammar, an event over the size
// limit) is decoded instead.
func (b *builder) emit(vals []value, suffix string, md mode) ([]Event, error) {
	in := b.v.in
	mem := &b.m.members
	mem.Reset()
	start := len(b.m.arena)
	buf := append(b.m.arena, `{"event_id":"`...)
	idAt := len(buf)
	buf, err := b.appendEventID(buf, suffix)
	if err != nil {
		return b.out, err
	}
	mem.String("event_id", alias(buf[idAt:]))
	buf = append(buf, `","type":"`...)
	buf = append(buf, in.typ.String()...)
	buf = append(buf, '"')
	mem.String("type", in.typ.String())
	for i := range in.fields {
		f := &in.fields[i]
		val := &vals[i]
		if val.kind == vAbsent {
			continue
		}
		buf = append(buf, ',', '"')
		buf = append(buf, f.name...) // field names are plain ASCII
		buf = append(buf, '"', ':')
		at := len(buf)
		buf = appendValue(buf, *val, md == reversed && f.name == "amount")
		// Strings and numbers alias the text just written where it is
		// not the value itself; buf may move later, the text stays.
		switch val.kind {
		case vNull:
			mem.Null(f.name)
		case vText:
			mem.String(f.name, val.text)
		case vNumber:
			mem.Number(f.name, alias(buf[at:]))
		case vTime:
			mem.String(f.name, alias(buf[at+1:len(buf)-1])) // RFC 3339 needs no escapes
		}
	}
	if md == deleted && in.typ == event.Opportunity {
		buf = append(buf, `,"deleted":true`...)
		mem.Bool("deleted", true)
	}
	buf = append(buf, '}')
	if mem.Exact() && len(buf)-start <= event.MaxSize && !forceDecode {
		err = b.m.dec.Build(mem, &b.m.ev)
	} else {
		err = b.m.dec.DecodeTo(buf[start:], &b.m.ev)
	}
	if err != nil {
		b.m.arena = buf[:start]
		return b.out, b.decorate(err)
	}
	b.m.arena = buf
	b.out = append(b.out, b.m.newEvent(start, b.m.ev.AccountID, b.m.ev.OccurredAt))
	return b.out, nil
}

// forceDecode makes emit decode every event it writes (tests compare the
// two ways).
var forceDecode = false

// newEvent completes the event whose JSON the arena holds from start: its
// account follows it in the arena. JSON's capacity ends where the account
// starts, so appending to it cannot overwrite the account. An event stays
// valid until the arena is reset, at the next record: the arena may move
// meanwhile, the events keep the memory they were written in.
func (m *Mapper) newEvent(start int, account string, at int64) Event {
	n := len(m.arena)
	m.arena = append(m.arena, account...)
	e := Event{JSON: m.arena[start:n:n], OccurredAt: at}
	if account != "" { // never, for a valid event
		e.AccountID = unsafe.String(&m.arena[n], len(account))
	}
	return e
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

// appendEventID derives the event_id of one mapped event. It must be the
// same every time the same change is delivered, whatever Kafka offset it
// has:
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
func (b *builder) appendEventID(dst []byte, suffix string) ([]byte, error) {
	v := b.v
	h := &b.m.id
	h.b = h.b[:0]
	switch f := v.in.eventID; {
	case f != nil:
		var raw string
		switch f.where {
		case inTimestamp:
			raw = strconv.FormatInt(v.rec.TimeMs, 10)
		default:
			r, _ := v.lookup(f)
			if !r.Exists() || r.Type == gjson.Null {
				return dst, b.fieldErr(event.ReasonMissingField, f, "is %s", describe(r))
			}
			raw = r.Raw
		}
		h.part("declared")
		h.part(v.in.topic)
		h.part(v.key.Raw)
		h.part(v.op)
		h.part(raw)
	case v.in.debezium:
		h.part("debezium")
		b.table(h)
		h.part(v.key.Raw)
		h.part(v.op)
		b.position(h)
	default:
		h.part("kafka")
		h.part(v.rec.Topic)
		h.int(int64(v.rec.Partition))
		h.int(v.rec.Offset)
	}
	h.part(suffix)
	sum := sha256.Sum256(h.b)
	return hex.AppendEncode(dst, sum[:16]), nil
}

// idParts is the input of an event id's hash: parts, each preceded by
// its length so that no two lists of parts run together alike.
type idParts struct{ b []byte }

func (h *idParts) part(s string) {
	h.b = binary.LittleEndian.AppendUint64(h.b, uint64(len(s)))
	h.b = append(h.b, s...)
}

// int is a part holding n in decimal.
func (h *idParts) int(n int64) {
	at := h.begin()
	h.b = strconv.AppendInt(h.b, n, 10)
	h.end(at)
}

// begin starts a part written piece by piece; end gives it its length.
func (h *idParts) begin() int {
	h.b = append(h.b, 0, 0, 0, 0, 0, 0, 0, 0)
	return len(h.b)
}

func (h *idParts) end(at int) {
	binary.LittleEndian.PutUint64(h.b[at-8:at], uint64(len(h.b)-at))
}

// Members of a Debezium source block that place a change.
const (
	srcDB = iota
	srcSchema
	srcTable
	srcLSN
	srcFile
	srcPos
	srcRow
	srcChangeLSN
	srcSerial
	srcSCN
	srcTS
	nSrc
)

// source is what a Debezium envelope's source block says about where a
// change comes from, read in one pass: where each member is on the tape,
// plus one (0: absent or null).
type source [nSrc]int32

// srcMember numbers the source members read, or -1.
func srcMember(key string) int {
	switch key {
	case "db":
		return srcDB
	case "schema":
		return srcSchema
	case "table":
		return srcTable
	case "lsn":
		return srcLSN
	case "file":
		return srcFile
	case "pos":
		return srcPos
	case "row":
		return srcRow
	case "change_lsn":
		return srcChangeLSN
	case "event_serial_no":
		return srcSerial
	case "scn":
		return srcSCN
	case "ts_ms":
		return srcTS
	}
	return -1
}

// source returns member i of the change's source block. The block is read
// once per record; when a member repeats, the last one that is not null
// counts.
func (v *view) source(i int) node {
	d := v.doc
	if !v.srcRead {
		v.srcRead = true
		if n := d.get(v.body, "source", "source"); n.at != noIndex { // else not an object: nothing to read
			for k, end := d.members(n); k < end; k = d.next(k) {
				if j := srcMember(d.key(k)); j >= 0 && !d.node(k).isNull() {
					v.src[j] = k + 1
				}
			}
		}
	}
	if k := v.src[i]; k > 0 {
		return d.node(k - 1)
	}
	return node{at: noIndex}
}

// table names the source table of a Debezium change: db.schema.table as
// the source block gives it, or the topic when it gives none.
func (b *builder) table(h *idParts) {
	v := b.v
	at := h.begin()
	defer h.end(at)
	if !v.source(srcTable).isString() {
		h.b = append(h.b, "topic:"...)
		h.b = append(h.b, v.in.topic...)
		return
	}
	dot := false
	for _, i := range [...]int{srcDB, srcSchema, srcTable} {
		if n := v.source(i); n.isString() {
			if dot {
				h.b = append(h.b, '.')
			}
			h.b, dot = append(h.b, n.result().Str...), true
		}
	}
}

// position is where a Debezium change sits in the database's log.
func (b *builder) position(h *idParts) {
	v := b.v
	at := h.begin()
	defer h.end(at)
	raw := func(parts ...string) {
		for _, p := range parts {
			h.b = append(h.b, p...)
		}
	}
	switch {
	case v.source(srcLSN).exists(): // Postgres (and Db2)
		raw("lsn=", v.source(srcLSN).raw)
	case v.source(srcFile).exists() && v.source(srcPos).exists(): // MySQL, MariaDB binlog; row numbers a multi-row event
		raw("binlog=", v.source(srcFile).raw, ":", v.source(srcPos).raw, ":", v.source(srcRow).raw)
	case v.source(srcChangeLSN).exists(): // SQL Server
		raw("change_lsn=", v.source(srcChangeLSN).raw, ":", v.source(srcSerial).raw)
	case v.source(srcSCN).exists(): // Oracle
		raw("scn=", v.source(srcSCN).raw)
	case v.source(srcTS).exists():
		raw("ts_ms=", v.source(srcTS).raw)
	default: // no position at all: the Kafka one is the best there is
		r := v.rec
		raw("kafka=", r.Topic, "/")
		h.b = strconv.AppendInt(h.b, int64(r.Partition), 10)
		h.b = append(h.b, '/')
		h.b = strconv.AppendInt(h.b, r.Offset, 10)
	}
}

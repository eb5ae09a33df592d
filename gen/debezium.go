package gen

import (
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/pyramid-crm/pyramid/config"
)

// DefaultDebeziumPrefix prefixes the topics of Debezium's rendering:
// server name crmdb, schema public, as the Postgres connector names them.
const DefaultDebeziumPrefix = "crmdb.public."

// A CRM database holding the generated facts, one table per event type:
//
//	accounts(id, name, owner_id, annual_spend, tier_override, snooze_until, currency, updated_at)
//	opportunities(id, account_id, stage, amount, probability, currency, updated_at)
//	orders(id, account_id, total, currency, opportunity_id, ordered_at)
//	activities(id, account_id, kind, rep, at)
//
// columns maps each event field to its column; fields absent from an event
// are absent from its row, so that mapping the row back gives the event.
var columns = map[string]map[string]string{
	"account": {"account_id": "id", "name": "name", "owner_id": "owner_id", "wallet": "annual_spend",
		"tier_override": "tier_override", "snooze_alerts_until": "snooze_until", "currency": "currency", "occurred_at": "updated_at"},
	"opportunity": {"account_id": "account_id", "opportunity_id": "id", "stage": "stage", "amount": "amount",
		"probability": "probability", "currency": "currency", "occurred_at": "updated_at"},
	"order": {"account_id": "account_id", "order_id": "id", "amount": "total", "currency": "currency",
		"opportunity_id": "opportunity_id", "occurred_at": "ordered_at"},
	"activity": {"account_id": "account_id", "kind": "kind", "owner_id": "rep", "occurred_at": "at"},
}

var tables = map[string]string{"account": "accounts", "opportunity": "opportunities", "order": "orders", "activity": "activities"}

// numeric columns are decimals: Debezium writes them as text with
// decimal.handling.mode=string.
var numeric = map[string]bool{"wallet": true, "amount": true, "probability": true}

// DebeziumInputs is the inputs: section that maps Debezium's rendering
// (topics under prefix) back onto the events it was rendered from.
func DebeziumInputs(prefix string) []config.Input {
	var out []config.Input
	for _, typ := range []string{"account", "opportunity", "order", "activity"} {
		fields := map[string]string{}
		for f, col := range columns[typ] {
			fields[f] = col
		}
		out = append(out, config.Input{Topic: prefix + tables[typ], Format: config.FormatDebezium, Type: typ, Fields: fields})
	}
	return out
}

// DebeziumTopics are the topics of Debezium's rendering under prefix.
func DebeziumTopics(prefix string) []string {
	return []string{prefix + "orders", prefix + "opportunities", prefix + "activities", prefix + "accounts"}
}

// Debezium renders generated events as the change records Debezium's
// Postgres connector would write for a CRM database that holds the same
// facts (the JSON converter without schemas, decimal.handling.mode=string,
// time.precision.mode=adaptive_time_microseconds with timestamptz columns
// as ISO text): each event becomes the creation (op c) of a row, keyed by
// the row's primary key, with its own position in the database log. A
// duplicate event is the same change delivered again, as after a connector
// restart: same key, same log position. A bad event becomes a change
// whose row cannot be mapped. Mapped with DebeziumInputs, the records give
// back the events (with event ids of their own), so that a history
// streamed as Debezium records scores as the native history does.
type Debezium struct {
	Prefix string // topic prefix; default DefaultDebeziumPrefix

	lsn      int64
	activity int64 // the activities table's last id
	last     struct {
		topic      string
		key, value []byte
	}
}

// Record renders one generated event: its topic, key and value. The
// slices are new for every call.
func (d *Debezium) Record(rec Record) (topic string, key, value []byte) {
	if d.Prefix == "" {
		d.Prefix = DefaultDebeziumPrefix
	}
	if rec.Duplicate && d.last.topic != "" {
		return d.last.topic, append([]byte(nil), d.last.key...), append([]byte(nil), d.last.value...)
	}
	d.lsn += 216
	table := tables[rec.Type]
	if rec.Bad || table == "" {
		table = "activities"
	}
	var pk []byte
	row := make([]byte, 0, len(rec.Line)+32)
	row = append(row, '{')
	if rec.Bad || rec.Type == "" {
		// The row of a bad event: a text the mapper cannot read as a row.
		row = row[:0]
		row = gjson.AppendJSONString(row, string(rec.Line))
	} else {
		cols := columns[rec.Type]
		if rec.Type == "activity" {
			d.activity++
			pk = strconv.AppendInt(pk, d.activity, 10)
			row = append(row, `"id":`...)
			row = append(row, pk...)
		}
		gjson.ParseBytes(rec.Line).ForEach(func(k, v gjson.Result) bool {
			col, ok := cols[k.Str]
			if !ok {
				return true // event_id, type: not columns
			}
			if len(row) > 1 {
				row = append(row, ',')
			}
			row = gjson.AppendJSONString(row, col)
			row = append(row, ':')
			if numeric[k.Str] && v.Type == gjson.Number {
				row = gjson.AppendJSONString(row, v.Raw)
			} else {
				row = append(row, v.Raw...)
			}
			if col == "id" {
				pk = append(pk[:0], v.Raw...)
			}
			return true
		})
		row = append(row, '}')
	}
	if pk == nil {
		pk = strconv.AppendInt(pk, d.lsn, 10)
	}
	key = append(append([]byte(`{"id":`), pk...), '}')
	ms := strconv.AppendInt(nil, rec.Time*1000, 10)
	v := make([]byte, 0, len(row)+300)
	v = append(v, `{"before":null,"after":`...)
	v = append(v, row...)
	v = append(v, `,"source":{"version":"2.7.3.Final","connector":"postgresql","name":"crmdb","ts_ms":`...)
	v = append(v, ms...)
	v = append(v, `,"snapshot":"false","db":"crm","schema":"public","table":"`...)
	v = append(v, table...)
	v = append(v, `","lsn":`...)
	v = strconv.AppendInt(v, d.lsn, 10)
	v = append(v, `},"op":"c","ts_ms":`...)
	v = append(v, ms...)
	v = append(v, '}')
	topic = d.Prefix + table
	d.last.topic, d.last.key, d.last.value = topic, key, v
	return topic, append([]byte(nil), key...), append([]byte(nil), v...)
}

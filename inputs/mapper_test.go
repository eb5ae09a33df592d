package inputs_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/inputs"
)

// newMapper builds a mapper for one input declared in YAML flow style.
func newMapper(t testing.TB, input string) *inputs.Mapper {
	t.Helper()
	cfg, err := config.Parse([]byte("stages: {discovery: 0.15, proposal: 0.5, closed_won: 1, closed_lost: 0}\ninputs:\n  - " + input + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := inputs.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// mapped maps one record and returns the events as generic maps, without
// their event ids (checked separately).
func mapped(t testing.TB, m *inputs.Mapper, r inputs.Record) ([]map[string]any, error) {
	t.Helper()
	evs, err := m.Map(r, nil)
	var out []map[string]any
	for _, e := range evs {
		var v map[string]any
		if err := json.Unmarshal(e.JSON, &v); err != nil {
			t.Fatalf("mapped event is not JSON: %v\n%s", err, e.JSON)
		}
		if v["account_id"] != e.AccountID {
			t.Errorf("Event.AccountID %q, JSON says %v", e.AccountID, v["account_id"])
		}
		if id, _ := v["event_id"].(string); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
			t.Errorf("event_id %q is not 32 hex digits", id)
		}
		delete(v, "event_id")
		out = append(out, v)
	}
	return out, err
}

func mustMap(t testing.TB, m *inputs.Mapper, r inputs.Record) []map[string]any {
	t.Helper()
	out, err := mapped(t, m, r)
	if err != nil {
		t.Fatalf("Map(%s): %v", r.Value, err)
	}
	return out
}

func wantErr(t testing.TB, err error, reason string, frags ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want a %s rejection", reason)
	}
	if got := event.ReasonOf(err); got != reason {
		t.Errorf("reason %q, want %q (%v)", got, reason, err)
	}
	for _, f := range frags {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q lacks %q", err, f)
		}
	}
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

const oppInput = `{topic: crmdb.public.opportunities, format: debezium, type: opportunity, fields: {account_id: account_id, opportunity_id: id, stage: stage, amount: amount, occurred_at: updated_at}}`

// The value of a create event as the Postgres connector documents it,
// with the JSON converter's schemas and a precise decimal.
const documentedCreate = `{
  "schema": {"type": "struct", "fields": [
    {"type": "struct", "fields": [
      {"type": "int32", "optional": false, "field": "id"},
      {"type": "string", "optional": false, "field": "account_id"},
      {"type": "string", "optional": false, "field": "stage"},
      {"type": "bytes", "optional": false, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
       "parameters": {"scale": "2", "connect.decimal.precision": "14"}, "field": "amount"},
      {"type": "int64", "optional": false, "name": "io.debezium.time.MicroTimestamp", "version": 1, "field": "updated_at"}],
     "optional": true, "name": "crmdb.public.opportunities.Value", "field": "before"},
    {"type": "struct", "fields": [
      {"type": "int32", "optional": false, "field": "id"},
      {"type": "string", "optional": false, "field": "account_id"},
      {"type": "string", "optional": false, "field": "stage"},
      {"type": "bytes", "optional": false, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
       "parameters": {"scale": "2", "connect.decimal.precision": "14"}, "field": "amount"},
      {"type": "int64", "optional": false, "name": "io.debezium.time.MicroTimestamp", "version": 1, "field": "updated_at"}],
     "optional": true, "name": "crmdb.public.opportunities.Value", "field": "after"},
    {"type": "struct", "fields": [
      {"type": "string", "optional": false, "field": "version"},
      {"type": "string", "optional": false, "field": "connector"},
      {"type": "string", "optional": false, "field": "name"},
      {"type": "int64", "optional": false, "field": "ts_ms"},
      {"type": "string", "optional": false, "field": "db"},
      {"type": "string", "optional": false, "field": "schema"},
      {"type": "string", "optional": false, "field": "table"},
      {"type": "int64", "optional": true, "field": "txId"},
      {"type": "int64", "optional": true, "field": "lsn"}],
     "optional": false, "name": "io.debezium.connector.postgresql.Source", "field": "source"},
    {"type": "string", "optional": false, "field": "op"},
    {"type": "int64", "optional": true, "field": "ts_ms"}],
   "optional": false, "name": "crmdb.public.opportunities.Envelope"},
  "payload": {
    "before": null,
    "after": {"id": 42, "account_id": "acme", "stage": "proposal", "amount": "SZYC0g==", "updated_at": 1772366400123456},
    "source": {"version": "2.7.3.Final", "connector": "postgresql", "name": "crmdb", "ts_ms": 1772366400200,
               "db": "crm", "schema": "public", "table": "opportunities", "txId": 555, "lsn": 24023128},
    "op": "c",
    "ts_ms": 1772366400321
  }
}`

func TestDocumentedCreate(t *testing.T) {
	m := newMapper(t, oppInput)
	r := inputs.Record{Topic: "crmdb.public.opportunities", Key: []byte(`{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"}],"optional":false,"name":"crmdb.public.opportunities.Key"},"payload":{"id":42}}`),
		Value: []byte(documentedCreate), TimeMs: 1772366400400}
	got := mustMap(t, m, r)
	// 0x499602D2 = 1234567890 cents
	want := `[{"account_id":"acme","amount":12345678.9,"occurred_at":"2026-03-01T12:00:00.123456Z","opportunity_id":"42","stage":"proposal","type":"opportunity"}]`
	if asJSON(got) != want {
		t.Fatalf("got  %s\nwant %s", asJSON(got), want)
	}
	// The same change without the converter's schemas, with the decimal as
	// decimal.handling.mode=string writes it, maps to the same event and id.
	var env struct{ Payload json.RawMessage }
	json.Unmarshal([]byte(documentedCreate), &env)
	plain := strings.Replace(string(env.Payload), `"SZYC0g=="`, `"12345678.90"`, 1)
	r2 := inputs.Record{Topic: r.Topic, Partition: 3, Offset: 99, Key: []byte(`{"id":42}`), Value: []byte(plain), TimeMs: 1772366400400}
	if got := mustMap(t, m, r2); asJSON(got) != want {
		t.Fatalf("without schema: %s", asJSON(got))
	}
	a, _ := m.Map(r, nil)
	first := string(a[0].JSON) // the mapper's until its next record
	b, _ := m.Map(r2, nil)
	if first != string(b[0].JSON) {
		t.Errorf("the same change gave different events:\n%s\n%s", first, b[0].JSON)
	}
}

// field maps one value, described by a Connect schema (or none), through
// a plain JSON input with the JSON converter's envelope, and returns the
// event as the pipeline decodes it.
func field(t *testing.T, name, schema, value string) (event.Event, error) {
	t.Helper()
	input := `{topic: t, format: json, type: order, fields: {account_id: "=a", order_id: "=o", amount: amt, occurred_at: at}}`
	amt, at := value, `"2026-03-01T00:00:00Z"`
	amtSchema, atSchema := schema, `{"type":"string","field":"at"}`
	if name == "at" {
		amt, at = "1", value
		amtSchema, atSchema = `{"type":"double","field":"amt"}`, schema
	}
	doc := `{"amt":` + amt + `,"at":` + at + `}`
	if schema != "" {
		doc = `{"schema":{"type":"struct","fields":[` + amtSchema + `,` + atSchema + `]},"payload":` + doc + `}`
	}
	evs, err := newMapper(t, input).Map(inputs.Record{Topic: "t", Value: []byte(doc)}, nil)
	if err != nil {
		return event.Event{}, err
	}
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	return event.NewDecoder(config.Default()).Decode(evs[0].JSON)
}

func TestDecimals(t *testing.T) {
	dec := func(scale string) string {
		return `{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":` + scale + `},"field":"amt"}`
	}
	vsd := `{"type":"struct","name":"io.debezium.data.VariableScaleDecimal","fields":[{"type":"int32","field":"scale"},{"type":"bytes","field":"value"}],"field":"amt"}`
	tests := []struct {
		name, schema, value string
		want                string // the amount as the event carries it, or an error fragment
		bad                 bool
	}{
		{"precise positive", dec(`"2"`), `"MDk="`, "123.45", false},                 // 0x3039 = 12345
		{"precise negative", dec(`"2"`), `"z8c="`, "-123.45", false},                // 0xCFC7 = -12345
		{"precise high bit needs a zero byte", dec(`"2"`), `"AIA="`, "1.28", false}, // 0x0080 = 128
		{"precise minus one", dec(`"2"`), `"/w=="`, "-0.01", false},
		{"precise scale 0", dec(`"0"`), `"MDk="`, "12345.00", false},
		{"precise scale as a number", dec(`3`), `"MDk="`, "12.34", false},
		{"precise below one", dec(`"4"`), `"MDk="`, "1.23", false},
		{"precise more decimals than cents", dec(`"5"`), `"MDk="`, "0.12", false}, // 0.12345 rounds half-even
		{"precise without scale", `{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","field":"amt"}`, `"MDk="`, "no parameters.scale", true},
		{"precise not base64", dec(`"2"`), `"!!!"`, "is not a base64 decimal", true},
		{"decimal.format numeric", dec(`"2"`), `123.45`, "123.45", false},
		{"variable scale", vsd, `{"scale":3,"value":"MDk="}`, "12.34", false},
		{"variable scale without schema", "", `{"scale":1,"value":"MDk="}`, "1234.50", false},
		{"string mode", `{"type":"string","field":"amt"}`, `"123.45"`, "123.45", false},
		{"string mode exponent", "", `"1.5e3"`, "1500.00", false},
		{"double mode", `{"type":"double","field":"amt"}`, `1.2345678E7`, "12345678.00", false},
		{"plain number", "", `99.999`, "100.00", false},
		{"base64 without a schema", "", `"MDk="`, "precise decimal (base64) but the record has no schema", true},
		{"text that is no number", "", `"12,50"`, `"12,50" is not a decimal number`, true},
		{"NaN text", "", `"NaN"`, "is not a decimal number", true},
		{"boolean", "", `true`, "must be a number or a decimal, not a boolean", true},
		{"too large", "", `2e13`, "amount 2e13", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := field(t, "amt", tt.schema, tt.value)
			if tt.bad {
				wantErr(t, err, event.ReasonInvalidField, tt.want, "amount <- amt")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Amount.String() != tt.want {
				t.Errorf("amount %s, want %s", got.Amount, tt.want)
			}
		})
	}
}

func TestTimestamps(t *testing.T) {
	named := func(typ, name string) string {
		return `{"type":"` + typ + `","name":"` + name + `","version":1,"field":"at"}`
	}
	const want = "2026-03-01T12:00:00.123456Z"
	tests := []struct {
		name, schema, value, want string
		bad                       bool
	}{
		{"MicroTimestamp", named("int64", "io.debezium.time.MicroTimestamp"), "1772366400123456", want, false},
		{"NanoTimestamp", named("int64", "io.debezium.time.NanoTimestamp"), "1772366400123456000", want, false},
		{"Timestamp (ms)", named("int64", "io.debezium.time.Timestamp"), "1772366400123", "2026-03-01T12:00:00.123Z", false},
		{"Connect Timestamp", named("int64", "org.apache.kafka.connect.data.Timestamp"), "1772366400123", "2026-03-01T12:00:00.123Z", false},
		{"Date", named("int32", "io.debezium.time.Date"), "20513", "2026-03-01T00:00:00Z", false},
		{"Connect Date", named("int32", "org.apache.kafka.connect.data.Date"), "20513", "2026-03-01T00:00:00Z", false},
		{"ZonedTimestamp", named("string", "io.debezium.time.ZonedTimestamp"), `"2026-03-01T13:00:00.123456+01:00"`, want, false},
		{"isostring", "", `"2026-03-01T12:00:00.123456Z"`, want, false},
		{"no zone is UTC", "", `"2026-03-01T12:00:00.123456"`, want, false},
		{"SQL style", "", `"2026-03-01 12:00:00.123456"`, want, false},
		{"date only", "", `"2026-03-01"`, "2026-03-01T00:00:00Z", false},
		{"digits in a string", "", `"1772366400123"`, "2026-03-01T12:00:00.123Z", false},
		{"inferred seconds", "", "1772366400", "2026-03-01T12:00:00Z", false},
		{"inferred ms", "", "1772366400123", "2026-03-01T12:00:00.123Z", false},
		{"inferred µs", "", "1772366400123456", want, false},
		{"inferred ns", "", "1772366400123456789", "2026-03-01T12:00:00.123456789Z", false},
		{"inferred days", "", "20513", "2026-03-01T00:00:00Z", false},
		{"ms named, out of range", named("int64", "io.debezium.time.Timestamp"), "1772366400123456", "not a time between the years 2000 and 2200", true},
		{"too small to be a time", "", "12", "not an epoch time between the years 2000 and 2200", true},
		{"before 2000", "", `"1999-12-31T23:59:59Z"`, "not between the years 2000 and 2200", true},
		{"fraction", "", "1772366400.5", "not a whole epoch count", true},
		{"text", "", `"yesterday"`, `"yesterday" is not a timestamp`, true},
		{"object", "", `{}`, "not an object", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := field(t, "at", tt.schema, tt.value)
			if tt.bad {
				wantErr(t, err, event.ReasonInvalidField, "occurred_at <- at", tt.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if at := got.Time().Format(time.RFC3339Nano); at != tt.want {
				t.Errorf("occurred_at %s, want %s", at, tt.want)
			}
		})
	}
}

func TestRecordTimeAndEnvelopePaths(t *testing.T) {
	m := newMapper(t, `{topic: t, format: debezium, type: activity, fields: {account_id: account_id, kind: "=call", owner_id: $key.rep, occurred_at: source.ts_ms}}`)
	v := `{"op":"c","before":null,"after":{"account_id":"a"},"source":{"ts_ms":1772366400123,"lsn":7}}`
	got := mustMap(t, m, inputs.Record{Topic: "t", Key: []byte(`{"rep":"r-1"}`), Value: []byte(v)})
	if w := `[{"account_id":"a","kind":"call","occurred_at":"2026-03-01T12:00:00.123Z","owner_id":"r-1","type":"activity"}]`; asJSON(got) != w {
		t.Errorf("got %s", asJSON(got))
	}
	// A column named like an envelope member is read from the row first.
	v2 := `{"op":"c","after":{"account_id":"a","source":{"ts_ms":1772366401000}},"source":{"ts_ms":1772366400123,"lsn":7}}`
	if got := mustMap(t, m, inputs.Record{Topic: "t", Value: []byte(v2)}); got[0]["occurred_at"] != "2026-03-01T12:00:01Z" {
		t.Errorf("row column not preferred: %v", got[0]["occurred_at"])
	}
	// $timestamp is the Kafka record's time.
	m2 := newMapper(t, `{topic: t, format: json, type: activity, fields: {account_id: $key, kind: k, occurred_at: $timestamp}}`)
	got = mustMap(t, m2, inputs.Record{Topic: "t", Key: []byte("acct-7"), Value: []byte(`{"k":"visit"}`), TimeMs: 1772366400123})
	if w := `[{"account_id":"acct-7","kind":"visit","occurred_at":"2026-03-01T12:00:00.123Z","type":"activity"}]`; asJSON(got) != w {
		t.Errorf("got %s", asJSON(got))
	}
	_, err := mapped(t, m2, inputs.Record{Topic: "t", Key: []byte("acct-7"), Value: []byte(`{"k":"visit"}`)})
	wantErr(t, err, event.ReasonMissingField, "occurred_at <- $timestamp: the record has no timestamp")
}

const orderInput = `{topic: o, format: debezium, type: order, fields: {account_id: account_id, order_id: id, amount: total, occurred_at: ordered_at, opportunity_id: opp}}`

func orderRow(acc, total string) string {
	return `{"id":5,"account_id":"` + acc + `","total":"` + total + `","ordered_at":"2026-01-15T08:00:00Z","opp":null,"status":"new"}`
}

func orderChange(op, before, after string, lsn string) []byte {
	return []byte(`{"op":"` + op + `","before":` + before + `,"after":` + after + `,"source":{"db":"crm","schema":"public","table":"orders","ts_ms":1772366400000,"lsn":` + lsn + `},"ts_ms":1772366400100}`)
}

func TestOrderChanges(t *testing.T) {
	m := newMapper(t, orderInput)
	rec := func(v []byte) inputs.Record { return inputs.Record{Topic: "o", Key: []byte(`{"id":5}`), Value: v} }
	// An update is the new row minus the old one, in the order's own month.
	got := mustMap(t, m, rec(orderChange("u", orderRow("a", "120.50"), orderRow("a", "100.00"), "10")))
	if w := `[{"account_id":"a","amount":-120.5,"occurred_at":"2026-01-15T08:00:00Z","order_id":"5","type":"order"},` +
		`{"account_id":"a","amount":100,"occurred_at":"2026-01-15T08:00:00Z","order_id":"5","type":"order"}]`; asJSON(got) != w {
		t.Errorf("update:\n got %s\nwant %s", asJSON(got), w)
	}
	// Reassigned to another account: taken from one, given to the other.
	if got := mustMap(t, m, rec(orderChange("u", orderRow("a", "1"), orderRow("b", "1"), "11"))); len(got) != 2 || got[0]["account_id"] != "a" || got[1]["account_id"] != "b" {
		t.Errorf("reassignment: %s", asJSON(got))
	}
	// A change to a column Pyramid does not read maps to nothing.
	if got := mustMap(t, m, rec(orderChange("u", orderRow("a", "1"), strings.Replace(orderRow("a", "1"), "new", "shipped", 1), "12"))); len(got) != 0 {
		t.Errorf("status change mapped to %s", asJSON(got))
	}
	// Without the old row, the change in amount cannot be known.
	_, err := mapped(t, m, rec(orderChange("u", `{"id":5}`, orderRow("a", "1"), "13")))
	wantErr(t, err, event.ReasonMissingField, "o: account_id <- before.account_id: is absent", "REPLICA IDENTITY FULL")
	_, err = mapped(t, m, rec(orderChange("u", "null", orderRow("a", "1"), "13")))
	wantErr(t, err, event.ReasonMissingField, "before is null", "REPLICA IDENTITY")
	// A deleted order is taken back.
	got = mustMap(t, m, rec(orderChange("d", orderRow("a", "20.00"), "null", "14")))
	if w := `[{"account_id":"a","amount":-20,"occurred_at":"2026-01-15T08:00:00Z","order_id":"5","type":"order"}]`; asJSON(got) != w {
		t.Errorf("delete: %s", asJSON(got))
	}
	// A credit note deleted gives the money back.
	if got := mustMap(t, m, rec(orderChange("d", orderRow("a", "-20.00"), "null", "15"))); got[0]["amount"] != 20.0 {
		t.Errorf("negative order deleted: %s", asJSON(got))
	}
	// Create and snapshot read apply the row.
	for _, op := range []string{"c", "r"} {
		if got := mustMap(t, m, rec(orderChange(op, "null", orderRow("a", "7"), "16"))); len(got) != 1 || got[0]["amount"] != 7.0 {
			t.Errorf("op %s: %s", op, asJSON(got))
		}
	}
}

func TestDeletions(t *testing.T) {
	m := newMapper(t, oppInput)
	rec := func(v string) inputs.Record {
		return inputs.Record{Topic: "crmdb.public.opportunities", Key: []byte(`{"id":9}`), Value: []byte(v)}
	}
	full := `{"id":9,"account_id":"a","stage":"proposal","amount":"5.00","updated_at":1772366400000000}` // 2026-03-01T12:00:00Z
	// Dated by the commit when that is later than the row's last update...
	got := mustMap(t, m, rec(`{"op":"d","before":`+full+`,"after":null,"source":{"ts_ms":1772370000000,"lsn":5}}`))
	if w := `[{"account_id":"a","deleted":true,"occurred_at":"2026-03-01T13:00:00Z","opportunity_id":"9","type":"opportunity"}]`; asJSON(got) != w {
		t.Errorf("deletion: %s", asJSON(got))
	}
	// ...and never earlier than the state it removes.
	got = mustMap(t, m, rec(`{"op":"d","before":`+full+`,"after":null,"source":{"ts_ms":1772360000000,"lsn":5}}`))
	if got[0]["occurred_at"] != "2026-03-01T12:00:00Z" {
		t.Errorf("deletion dated before the row's update: %v", got[0]["occurred_at"])
	}
	// Postgres's default replica identity leaves only the key: the account
	// cannot be known, and the message says what to change.
	_, err := mapped(t, m, rec(`{"op":"d","before":{"id":9},"after":null,"source":{"ts_ms":1772370000000,"lsn":5}}`))
	wantErr(t, err, event.ReasonMissingField, "crmdb.public.opportunities: account_id <- before.account_id: is absent", "REPLICA IDENTITY FULL")
	// Tombstones (null values, or the converter's null payload) are skipped.
	for _, v := range []string{"", "null", `{"schema":null,"payload":null}`} {
		if got, err := mapped(t, m, rec(v)); err != nil || len(got) != 0 {
			t.Errorf("tombstone %q: %v %v", v, got, err)
		}
	}
	// An account deleted loses the profile it carried.
	ma := newMapper(t, `{topic: acc, format: debezium, type: account, fields: {account_id: id, name: name, wallet: spend, occurred_at: $timestamp}}`)
	got = mustMap(t, ma, inputs.Record{Topic: "acc", Value: []byte(`{"op":"d","before":{"id":"a"},"after":null,"source":{"ts_ms":1772370000000,"lsn":5}}`), TimeMs: 1772370000500})
	if w := `[{"account_id":"a","name":null,"occurred_at":"2026-03-01T13:00:00.5Z","type":"account","wallet":null}]`; asJSON(got) != w {
		t.Errorf("account deletion: %s", asJSON(got))
	}
	// An activity happened even if its record is deleted.
	mt := newMapper(t, `{topic: act, format: debezium, type: activity, fields: {account_id: a, kind: k, occurred_at: at}}`)
	if got := mustMap(t, mt, inputs.Record{Topic: "act", Value: []byte(`{"op":"d","before":{"id":1},"after":null,"source":{"lsn":5}}`)}); len(got) != 0 {
		t.Errorf("activity deletion mapped to %s", asJSON(got))
	}
	// Records flattened by ExtractNewRecordState mark deletes with __deleted.
	mj := newMapper(t, `{topic: flat, format: json, type: opportunity, fields: {account_id: account_id, opportunity_id: id, stage: stage, amount: amount, occurred_at: updated_at}}`)
	got = mustMap(t, mj, inputs.Record{Topic: "flat", Value: []byte(`{"id":9,"account_id":"a","stage":"proposal","amount":5,"updated_at":"2026-03-01T12:00:00Z","__deleted":"true"}`)})
	if len(got) != 1 || got[0]["deleted"] != true {
		t.Errorf("__deleted: %s", asJSON(got))
	}
}

// An opportunity moved to another account leaves the old one.
func TestOpportunityMoved(t *testing.T) {
	m := newMapper(t, oppInput)
	row := func(acc, at string) string {
		return `{"id":9,"account_id":"` + acc + `","stage":"proposal","amount":5,"updated_at":"` + at + `"}`
	}
	rec := func(before, after string) inputs.Record {
		return inputs.Record{Topic: "crmdb.public.opportunities", Key: []byte(`{"id":9}`),
			Value: []byte(`{"op":"u","before":` + before + `,"after":` + after + `,"source":{"lsn":7}}`)}
	}
	got := mustMap(t, m, rec(row("a", "2026-03-01T12:00:00Z"), row("b", "2026-03-02T12:00:00Z")))
	want := `[{"account_id":"a","deleted":true,"occurred_at":"2026-03-02T12:00:00Z","opportunity_id":"9","type":"opportunity"},` +
		`{"account_id":"b","amount":5,"occurred_at":"2026-03-02T12:00:00Z","opportunity_id":"9","stage":"proposal","type":"opportunity"}]`
	if asJSON(got) != want {
		t.Errorf("moved:\n got %s\nwant %s", asJSON(got), want)
	}
	// Same account, or no old account to compare with: just the upsert.
	for _, before := range []string{row("b", "2026-03-01T12:00:00Z"), `{"id":9}`, "null"} {
		if got := mustMap(t, m, rec(before, row("b", "2026-03-02T12:00:00Z"))); len(got) != 1 || got[0]["account_id"] != "b" {
			t.Errorf("before %s: %s", before, asJSON(got))
		}
	}
}

func TestOps(t *testing.T) {
	m := newMapper(t, oppInput)
	rec := func(v string) inputs.Record {
		return inputs.Record{Topic: "crmdb.public.opportunities", Value: []byte(v)}
	}
	row := `{"id":9,"account_id":"a","stage":"proposal","amount":5,"updated_at":"2026-03-01T12:00:00Z"}`
	for _, op := range []string{"c", "r", "u"} {
		if got := mustMap(t, m, rec(`{"op":"`+op+`","before":{"id":9},"after":`+row+`,"source":{"lsn":1}}`)); len(got) != 1 || got[0]["stage"] != "proposal" {
			t.Errorf("op %s: %s", op, asJSON(got))
		}
	}
	for _, op := range []string{"t", "m"} {
		if got := mustMap(t, m, rec(`{"op":"`+op+`","source":{"lsn":1}}`)); len(got) != 0 {
			t.Errorf("op %s mapped to %s", op, asJSON(got))
		}
	}
	_, err := mapped(t, m, rec(`{"op":"x","after":`+row+`}`))
	wantErr(t, err, event.ReasonInvalidField, `op "x" is not one of c, u, d, r, t, m`)
	_, err = mapped(t, m, rec(row))
	wantErr(t, err, event.ReasonMissingField, "op is absent: not a Debezium change event", "format: json")
	_, err = mapped(t, m, rec(`{"op":"c","before":null,"after":null}`))
	wantErr(t, err, event.ReasonMissingField, `after is null in an op "c" change`)
}

func TestRejections(t *testing.T) {
	m := newMapper(t, oppInput)
	rec := func(v string) inputs.Record {
		return inputs.Record{Topic: "crmdb.public.opportunities", Value: []byte(v)}
	}
	// row sets one column of a valid create over its default.
	row := func(kv string) string {
		cols := map[string]string{"id": "9", "account_id": `"a"`, "stage": `"proposal"`, "amount": "5", "updated_at": `"2026-03-01T12:00:00Z"`}
		k, v, _ := strings.Cut(kv, ":")
		cols[strings.Trim(k, `"`)] = v
		var parts []string
		for k, v := range cols {
			parts = append(parts, `"`+k+`":`+v)
		}
		return `{"op":"c","after":{` + strings.Join(parts, ",") + `},"source":{"lsn":1}}`
	}
	_, err := mapped(t, m, rec(row(`"stage":"won"`)))
	wantErr(t, err, event.ReasonUnknownStage, `stage "won" is not a configured stage`, "stage <- after.stage")
	if got := mustMap(t, m, rec(row(`"stage":"discovery"`))); got[0]["stage"] != "discovery" {
		t.Errorf("a configured custom stage: %s", asJSON(got))
	}
	_, err = mapped(t, m, rec(row(`"stage":true`)))
	wantErr(t, err, event.ReasonInvalidField, "stage <- after.stage: must be a string or a number, not a boolean")
	_, err = mapped(t, m, rec(row(`"account_id":""`)))
	wantErr(t, err, event.ReasonInvalidField, "account_id must be 1 to 128 bytes", "account_id <- after.account_id")
	_, err = mapped(t, m, rec(row(`"account_id":null`)))
	wantErr(t, err, event.ReasonMissingField, "account_id <- after.account_id: is null")
	_, err = mapped(t, m, rec(row(`"amount":-5`)))
	wantErr(t, err, event.ReasonInvalidField, "amount -5 must be >= 0", "amount <- after.amount")
	_, err = mapped(t, m, rec(`{"op":"c",`))
	wantErr(t, err, event.ReasonNotJSON, "crmdb.public.opportunities: record value is not JSON")
	_, err = mapped(t, m, rec(`[1]`))
	wantErr(t, err, event.ReasonNotJSON, "record value is an array, not a JSON object")
	_, err = mapped(t, m, rec(strings.Repeat("[", 100000)+strings.Repeat("]", 100000)))
	wantErr(t, err, event.ReasonNotJSON, "nesting deeper than 64 levels")
	_, err = mapped(t, m, rec(`{"schema":{},"payload":[1]}`))
	wantErr(t, err, event.ReasonNotJSON, "payload is an array")
	_, err = mapped(t, m, rec(`"`+strings.Repeat("x", event.MaxSize)+`"`))
	wantErr(t, err, event.ReasonTooLarge, "the limit is 1048576")
	_, err = mapped(t, m, inputs.Record{Topic: "elsewhere", Value: []byte(`{}`)})
	wantErr(t, err, event.ReasonInvalidField, `topic "elsewhere" is not a declared input`)
}

// Event ids must survive a connector's redelivery and tell changes apart.
func TestEventIDs(t *testing.T) {
	id := func(m *inputs.Mapper, r inputs.Record) string {
		t.Helper()
		evs, err := m.Map(r, nil)
		if err != nil || len(evs) == 0 {
			t.Fatalf("%s: %v", r.Value, err)
		}
		var v struct {
			EventID string `json:"event_id"`
		}
		json.Unmarshal(evs[len(evs)-1].JSON, &v)
		return v.EventID
	}
	m := newMapper(t, oppInput)
	row := `{"id":9,"account_id":"a","stage":"proposal","amount":5,"updated_at":"2026-03-01T12:00:00Z"}`
	pg := func(src string) []byte {
		return []byte(`{"op":"u","before":null,"after":` + row + `,"source":{"db":"crm","schema":"public","table":"opportunities",` + src + `}}`)
	}
	rec := func(v []byte, key string, off int64) inputs.Record {
		return inputs.Record{Topic: "crmdb.public.opportunities", Partition: int(off % 3), Offset: off, Key: []byte(key), Value: v, TimeMs: 1772366400000 + off}
	}
	same := func(what string, a, b string) {
		t.Helper()
		if a != b {
			t.Errorf("%s: ids differ (%s, %s)", what, a, b)
		}
	}
	differ := func(what string, a, b string) {
		t.Helper()
		if a == b {
			t.Errorf("%s: same id %s", what, a)
		}
	}
	lsn := id(m, rec(pg(`"ts_ms":1,"lsn":100`), `{"id":9}`, 1))
	same("Postgres redelivery at a new offset", lsn, id(m, rec(pg(`"ts_ms":1,"lsn":100`), `{"id":9}`, 500)))
	same("key with and without the converter's schema", lsn, id(m, rec(pg(`"ts_ms":1,"lsn":100`), `{"schema":{"type":"struct"},"payload":{"id":9}}`, 7)))
	differ("another LSN", lsn, id(m, rec(pg(`"ts_ms":1,"lsn":101`), `{"id":9}`, 1)))
	differ("another row at the same LSN (a snapshot)", lsn, id(m, rec(pg(`"ts_ms":1,"lsn":100`), `{"id":10}`, 1)))
	mysql := id(m, rec(pg(`"ts_ms":1,"file":"mysql-bin.000003","pos":484,"row":0`), `{"id":9}`, 1))
	same("MySQL redelivery", mysql, id(m, rec(pg(`"ts_ms":1,"file":"mysql-bin.000003","pos":484,"row":0`), `{"id":9}`, 40)))
	differ("MySQL: another row of the same binlog event", mysql, id(m, rec(pg(`"ts_ms":1,"file":"mysql-bin.000003","pos":484,"row":1`), `{"id":9}`, 1)))
	differ("MySQL: another binlog file", mysql, id(m, rec(pg(`"ts_ms":1,"file":"mysql-bin.000004","pos":484,"row":0`), `{"id":9}`, 1)))
	ts := id(m, rec(pg(`"ts_ms":1772366400000`), `{"id":9}`, 1))
	same("ts_ms fallback", ts, id(m, rec(pg(`"ts_ms":1772366400000`), `{"id":9}`, 2)))
	differ("ts_ms fallback, another time", ts, id(m, rec(pg(`"ts_ms":1772366400001`), `{"id":9}`, 1)))
	// An order update's two events have distinct ids.
	mo := newMapper(t, orderInput)
	evs, err := mo.Map(inputs.Record{Topic: "o", Value: orderChange("u", orderRow("a", "1"), orderRow("a", "2"), "9")}, nil)
	if err != nil || len(evs) != 2 || string(evs[0].JSON[:46]) == string(evs[1].JSON[:46]) {
		t.Errorf("update events: %v %d", err, len(evs))
		for _, e := range evs {
			t.Logf("%s", e.JSON)
		}
	}

	// Plain JSON: the record key and a declared field...
	mj := newMapper(t, `{topic: j, format: json, type: activity, fields: {event_id: version, account_id: a, kind: k, occurred_at: at}}`)
	jrec := func(key, v string, off int64) inputs.Record {
		return inputs.Record{Topic: "j", Offset: off, Key: []byte(key), Value: []byte(v)}
	}
	body := func(version string) string {
		return `{"a":"acc","k":"call","at":"2026-03-01T12:00:00Z","version":` + version + `}`
	}
	j := id(mj, jrec("k1", body("3"), 1))
	same("plain JSON redelivery", j, id(mj, jrec("k1", body("3"), 99)))
	differ("plain JSON, another version", j, id(mj, jrec("k1", body("4"), 1)))
	differ("plain JSON, another key", j, id(mj, jrec("k2", body("3"), 1)))
	_, err = mapped(t, mj, jrec("k1", `{"a":"acc","k":"call","at":"2026-03-01T12:00:00Z"}`, 1))
	wantErr(t, err, event.ReasonMissingField, "event_id <- version: is absent")
	// ...else the Kafka position: each record is its own event.
	mp := newMapper(t, `{topic: j, format: json, type: activity, fields: {account_id: a, kind: k, occurred_at: at}}`)
	p := id(mp, jrec("k1", body("3"), 1))
	same("same position", p, id(mp, jrec("k1", body("3"), 1)))
	differ("another offset", p, id(mp, jrec("k1", body("3"), 2)))
}

func FuzzMap(f *testing.F) {
	f.Add([]byte(documentedCreate), []byte(`{"id":42}`))
	f.Add(orderChange("u", orderRow("a", "120.50"), orderRow("a", "100.00"), "10"), []byte(`{"id":5}`))
	f.Add([]byte(`{"op":"d","before":{"id":9,"account_id":"a"},"source":{"ts_ms":1772370000000}}`), []byte(nil))
	f.Add([]byte(`{"schema":{"type":"struct","fields":[{"field":"amount","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}}]},"payload":{"op":"c","after":{"amount":"/w=="}}}`), []byte("k"))
	cfg, err := config.Parse([]byte("inputs:\n  - " + oppInput + "\n  - " + orderInput + "\n"))
	if err != nil {
		f.Fatal(err)
	}
	m, err := inputs.New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	dec := event.NewDecoder(cfg)
	f.Fuzz(func(t *testing.T, value, key []byte) {
		for _, topic := range []string{"crmdb.public.opportunities", "o"} {
			evs, err := m.Map(inputs.Record{Topic: topic, Key: key, Value: value, TimeMs: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli()}, nil)
			if err != nil {
				if event.ReasonOf(err) == "" {
					t.Fatalf("error without a reason: %v", err)
				}
				continue
			}
			for _, e := range evs {
				if _, err := dec.Decode(e.JSON); err != nil {
					t.Fatalf("mapped event does not decode: %v\n%s", err, e.JSON)
				}
			}
		}
	})
}

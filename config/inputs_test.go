package config_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/pyramid-crm/pyramid/config"
)

// The shape of the inputs section is relied on by users' files: this is
// the example of docs/events.md.
const inputsExample = `
inputs:
  - topic: crmdb.public.opportunities   # any topic, any key, any partition count
    format: debezium                    # json | debezium
    type: opportunity                   # order | opportunity | activity | account
    fields:                             # Pyramid field <- dotted path in the record (after unwrapping)
      account_id: account_id
      opportunity_id: id
      stage: stage
      amount: amount
      occurred_at: updated_at           # or source.ts_ms, or $timestamp (the Kafka record time)
  - topic: saas.orders
    format: json
    type: order
    fields:
      event_id: change_id
      account_id: $key.customer
      order_id: order.number
      amount: order.total
      currency: "=EUR"
      occurred_at: $timestamp
`

func TestInputsParse(t *testing.T) {
	c := mustParse(t, inputsExample)
	want := []config.Input{
		{Topic: "crmdb.public.opportunities", Format: "debezium", Type: "opportunity", Fields: map[string]string{
			"account_id": "account_id", "opportunity_id": "id", "stage": "stage", "amount": "amount", "occurred_at": "updated_at"}},
		{Topic: "saas.orders", Format: "json", Type: "order", Fields: map[string]string{
			"event_id": "change_id", "account_id": "$key.customer", "order_id": "order.number", "amount": "order.total",
			"currency": "=EUR", "occurred_at": "$timestamp"}},
	}
	if !reflect.DeepEqual(c.Inputs, want) {
		t.Fatalf("inputs = %+v\nwant %+v", c.Inputs, want)
	}
	// The effective configuration prints them, and reads back the same.
	y, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	back, err := config.Parse(y)
	if err != nil || !reflect.DeepEqual(back.Inputs, want) {
		t.Fatalf("round trip: %v\n%s", err, y)
	}
	// Without inputs nothing is printed: the key is optional.
	if y, _ := config.Default().YAML(); strings.Contains(string(y), "inputs") {
		t.Errorf("default config prints inputs:\n%s", y)
	}
	for _, ok := range []string{"inputs: []\n", "inputs:\n"} {
		if c := mustParse(t, ok); len(c.Inputs) != 0 {
			t.Errorf("%q: %+v", ok, c.Inputs)
		}
	}
}

func TestInputsRefused(t *testing.T) {
	in := func(body string) string {
		return "inputs:\n  - " + strings.ReplaceAll(strings.TrimSpace(body), "\n", "\n    ") + "\n"
	}
	order := "topic: t\nformat: json\ntype: order\nfields: {account_id: a, occurred_at: t, order_id: id, amount: amt}"
	tests := []struct {
		name string
		yaml string
		want []string // fragments; the first names the key
	}{
		{"not a list", "inputs: {topic: t}\n", []string{"inputs: must be a list"}},
		{"unknown key", in(order + "\nformt: json"), []string{"inputs[0].formt: unknown key", "line", "fields, format, topic, type"}},
		{"unknown key in second", "inputs:\n  - {" + strings.ReplaceAll(order, "\n", ", ") + "}\n  - {topik: x}\n", []string{"inputs[1].topik: unknown key"}},
		{"fields not a mapping", in("topic: t\nformat: json\ntype: order\nfields: [a]"), []string{"inputs[0].fields: must be a mapping"}},
		{"field path not a scalar", in(strings.Replace(order, "amount: amt", "amount: {path: x}", 1)), []string{"inputs[0].fields.amount: must be a single value"}},
		{"no topic", in(strings.Replace(order, "topic: t", "topic: ''", 1)), []string{"inputs[0].topic: is required"}},
		{"bad topic", in(strings.Replace(order, "topic: t", "topic: 'a b'", 1)), []string{"inputs[0].topic:", `"a b"`, "not a Kafka topic name"}},
		{"internal topic", in(strings.Replace(order, "topic: t", "topic: pyramid.dlq", 1)), []string{"inputs[0].topic:", "Pyramid's own topics"}},
		{"duplicate topic", "inputs:\n  - {" + strings.ReplaceAll(order, "\n", ", ") + "}\n  - {" + strings.ReplaceAll(order, "\n", ", ") + "}\n",
			[]string{"inputs[1].topic:", "already declared by inputs[0]"}},
		{"bad format", in(strings.Replace(order, "format: json", "format: avro", 1)), []string{"inputs[0].format:", `"avro"`, "json or debezium"}},
		{"no format", in(strings.Replace(order, "format: json\n", "", 1)), []string{"inputs[0].format:", `""`}},
		{"bad type", in(strings.Replace(order, "type: order", "type: invoice", 1)), []string{"inputs[0].type:", `"invoice"`, "order, opportunity, activity, account"}},
		{"unknown field", in(strings.Replace(order, "amount: amt", "amount: amt, amout: x", 1)), []string{"inputs[0].fields.amout: unknown field for type order", "order_id, amount, currency, opportunity_id"}},
		{"field of another type", in(strings.Replace(order, "amount: amt", "amount: amt, stage: s", 1)), []string{"inputs[0].fields.stage: unknown field for type order"}},
		{"missing required", in(strings.Replace(order, "order_id: id, ", "", 1)), []string{"inputs[0].fields.order_id: is required for type order"}},
		{"missing account_id", in(strings.Replace(order, "account_id: a, ", "", 1)), []string{"inputs[0].fields.account_id: is required"}},
		{"empty path", in(strings.Replace(order, "amount: amt", "amount: ''", 1)), []string{"inputs[0].fields.amount:", "is empty"}},
		{"empty segment", in(strings.Replace(order, "amount: amt", "amount: a..b", 1)), []string{"inputs[0].fields.amount:", `"a..b"`, "empty segment"}},
		{"leading dot", in(strings.Replace(order, "amount: amt", "amount: .a", 1)), []string{"inputs[0].fields.amount:", "empty segment"}},
		{"timestamp on a non-time field", in(strings.Replace(order, "amount: amt", "amount: $timestamp", 1)), []string{"inputs[0].fields.amount:", "only a time field"}},
		{"unknown special", in(strings.Replace(order, "amount: amt", "amount: $offset", 1)), []string{"inputs[0].fields.amount:", "$timestamp, $key"}},
		{"empty key path", in(strings.Replace(order, "account_id: a", "account_id: $key.", 1)), []string{"inputs[0].fields.account_id:", "empty segment"}},
		{"empty constant", in(strings.Replace(order, "amount: amt", "amount: '='", 1)), []string{"inputs[0].fields.amount:", "empty constant"}},
		{"account with nothing to set", in("topic: t\nformat: debezium\ntype: account\nfields: {account_id: id, occurred_at: source.ts_ms}"),
			[]string{"inputs[0].fields: an account input must map at least one of name, owner_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s\n%+v", tt.yaml, c.Inputs)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q\n%s", err, w, tt.yaml)
				}
			}
		})
	}
}

func TestInputsAccepted(t *testing.T) {
	for _, y := range []string{
		"inputs:\n  - {topic: crm.accounts, format: debezium, type: account, fields: {account_id: id, occurred_at: $timestamp, wallet: annual_spend}}\n",
		"inputs:\n  - {topic: calls, format: json, type: activity, fields: {account_id: $key, occurred_at: at, kind: '=call', owner_id: rep}}\n",
		"inputs:\n  - {topic: Opps_2, format: json, type: opportunity, fields: {account_id: a, occurred_at: source.ts_ms, opportunity_id: id, stage: s, amount: x, probability: p}}\n",
		"inputs:\n  - {topic: snooze, format: json, type: account, fields: {account_id: a, occurred_at: t, snooze_alerts_until: $timestamp}}\n",
	} {
		if _, err := config.Parse([]byte(y)); err != nil {
			t.Errorf("%s: %v", y, err)
		}
	}
	// Every type lists the fields it needs as required.
	for typ, fields := range config.InputFields {
		var req []string
		for _, f := range fields {
			if f.Required {
				req = append(req, f.Name)
			}
		}
		if len(req) < 2 || req[0] != "account_id" || req[1] != "occurred_at" {
			t.Errorf("%s: required fields %v", typ, req)
		}
	}
}

package scoring_test

// Identifiers in this file carry a codec prefix: other test files of this
// package are written concurrently and must not collide with them.

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/event"
	"github.com/pyramid-crm/pyramid/scoring"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata")

// codecGolden names the golden files of format version v.
func codecGolden(v int) (bin, json string) {
	return fmt.Sprintf("testdata/state_v%d.bin", v), fmt.Sprintf("testdata/state_v%d.json", v)
}

// codecLatest is the format version MarshalAccount writes.
const codecLatest = 3

// codecAsOf is the evaluation time of the golden snapshots.
var codecAsOf = codecTime("2026-06-30T00:00:00Z")

func codecTime(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UnixNano()
}

// codecHarness builds accounts through the public API only: JSON events
// through event.Decoder into scoring.Engine.Apply.
type codecHarness struct {
	tb  testing.TB
	eng *scoring.Engine
	dec *event.Decoder
	out scoring.Output
	log [][]byte // every emitted record, as JSON
	n   int
	// reuse decodes every event from one buffer and scribbles over it after
	// Apply, as a Kafka or file reader reusing its buffer would.
	reuse bool
	buf   []byte
}

func newCodecHarness(tb testing.TB) *codecHarness {
	return newCodecHarnessConfig(tb, config.Default())
}

func newCodecHarnessConfig(tb testing.TB, cfg *config.Config) *codecHarness {
	return &codecHarness{tb: tb, eng: scoring.NewEngine(scoring.NewParams(cfg)), dec: event.NewDecoder(cfg)}
}

// apply decodes one event (body: members after the common ones) and applies it.
func (h *codecHarness) apply(id, acc, at, body string) scoring.Result {
	h.tb.Helper()
	if id == "" {
		h.n++
		id = fmt.Sprintf("ev-%d", h.n)
	}
	line := fmt.Sprintf(`{"event_id":%q,"account_id":%q,"occurred_at":%q,%s}`, id, acc, at, body)
	in := []byte(line)
	if h.reuse {
		h.buf = append(h.buf[:0], line...)
		in = h.buf
	}
	ev, err := h.dec.Decode(in)
	if err != nil {
		h.tb.Fatalf("decode %s: %v", line, err)
	}
	h.out.Reset()
	_, res := h.eng.Apply(&ev, scoring.EventTime, &h.out)
	h.record()
	if h.reuse {
		for i := range h.buf {
			h.buf[i] = '#'
		}
	}
	return res
}

func (h *codecHarness) evaluate(acc string, asOf int64) {
	h.tb.Helper()
	a := h.eng.Account(acc)
	if a == nil {
		h.tb.Fatalf("no account %q", acc)
	}
	h.out.Reset()
	h.eng.Evaluate(a, asOf, &h.out)
	h.record()
}

// rank evaluates every account at asOf and applies a capacity ranking of
// them all, as replay does at its end.
func (h *codecHarness) rank(asOf int64) {
	h.tb.Helper()
	for _, id := range h.eng.IDs() {
		h.evaluate(id, asOf)
	}
	h.out.Reset()
	r := scoring.Rank(h.eng.Params(), h.eng.Candidates(asOf))
	h.eng.ApplyRanking(r, asOf, &h.out, nil)
	h.record()
}

// codecCapacity adds two more accounts that qualify for major and ranks
// every account for major's one place (see codecConfig).
func codecCapacity(h *codecHarness) {
	h.apply("", "acc-cap-1", "2026-04-10T00:00:00Z", `"type":"account","wallet":2000000`)
	h.apply("", "acc-cap-2", "2026-04-11T00:00:00Z", `"type":"account","wallet":1500000`)
	h.rank(codecAsOf)
}

// codecConfig is the configuration format v's golden file was written
// with: from version 3 on, with major capped at one account, so that the
// file holds an account whose qualified tier is above its tier.
func codecConfig(v int) *config.Config {
	cfg := config.Default()
	if v >= 3 {
		cfg.Tiers.Major.MaxAccounts = 1
	}
	return cfg
}

func (h *codecHarness) record() {
	for i := range h.out.Changes {
		h.log = append(h.log, h.out.Changes[i].AppendJSON(nil))
	}
	for i := range h.out.Alerts {
		h.log = append(h.log, h.out.Alerts[i].AppendJSON(nil))
	}
}

// codecScript applies events of every type to a few accounts: orders (with
// and without an opportunity, negative, invoicing an unknown opportunity),
// opportunity upserts in and out of order, activities, account updates with
// values and nulls, a duplicate, more than 16 events so the dedup ring wraps,
// and a clock evaluation that opens a neglect alert.
func codecScript(h *codecHarness) {
	big := "acc-big"
	h.apply("", big, "2026-01-05T09:00:00Z", `"type":"account","name":"Big Co \"Ltd\"","owner_id":"rep-1","wallet":3000000.5`)
	h.apply("", big, "2026-01-06T09:00:00Z", `"type":"opportunity","opportunity_id":"o-1","stage":"proposal","amount":800000`)
	h.apply("", big, "2026-01-07T09:00:00Z", `"type":"opportunity","opportunity_id":"o-2","stage":"closed_won","amount":300000.25`)
	h.apply("", big, "2026-01-08T09:00:00Z", `"type":"order","order_id":"ord-1","amount":120000.1,"opportunity_id":"o-2"`)
	h.apply("", big, "2026-02-08T09:00:00Z", `"type":"order","order_id":"ord-2","amount":-5000`)
	h.apply("", big, "2026-02-09T09:00:00Z", `"type":"order","order_id":"ord-3","amount":42.42,"opportunity_id":"o-unknown"`)
	h.apply("", big, "2026-02-10T09:00:00Z", `"type":"opportunity","opportunity_id":"o-3","stage":"closed_lost","amount":1000`)
	// An older upsert of o-1 arrives late and must not win.
	h.apply("", big, "2026-01-01T09:00:00Z", `"type":"opportunity","opportunity_id":"o-1","stage":"prospecting","amount":1`)
	h.apply("", big, "2026-02-11T09:00:00Z", `"type":"opportunity","opportunity_id":"o-1","stage":"negotiation","amount":900000,"probability":0.6`)
	for i := range 18 {
		h.apply("", big, fmt.Sprintf("2026-03-%02dT10:00:00Z", i+1), `"type":"activity","kind":"call","owner_id":"rep-2"`)
	}
	if res := h.apply("ev-25", big, "2026-03-20T10:00:00Z", `"type":"activity","kind":"call"`); res != scoring.Duplicate {
		h.tb.Fatalf("repeat of ev-25: %v, want Duplicate", res)
	}
	h.apply("", big, "2026-03-20T11:00:00Z", `"type":"activity","kind":"site visit"`)
	h.evaluate(big, codecTime("2026-05-01T00:00:00Z")) // > 14 days: neglected

	pinned := "acc-pinned ☃"
	h.apply("", pinned, "2026-02-01T00:00:00Z", `"type":"account","tier_override":"major","snooze_alerts_until":"2026-12-31T00:00:00+01:00","name":"Pin"`)
	h.apply("", pinned, "2026-02-02T00:00:00Z", `"type":"order","order_id":"p-1","amount":10.01`)
	h.apply("", pinned, "2026-02-03T00:00:00Z", `"type":"account","tier_override":null,"name":null,"wallet":null,"owner_id":"rep-3"`)
	// An older value of name loses to the newer null.
	h.apply("", pinned, "2026-01-03T00:00:00Z", `"type":"account","name":"Old"`)

	h.apply("", "acc-small", "2025-12-31T23:59:59.999Z", `"type":"order","order_id":"s-1","amount":10`)

	mid := "acc-mid"
	h.apply("", mid, "2026-04-01T00:00:00Z", `"type":"account","wallet":0`)
	h.apply("", mid, "2026-04-02T00:00:00Z", `"type":"opportunity","opportunity_id":"m-1","stage":"qualification","amount":200000`)
	h.apply("", mid, "2026-04-03T00:00:00Z", `"type":"order","order_id":"m-2","amount":60000,"opportunity_id":"m-1"`)
	h.apply("", mid, "2026-04-04T00:00:00Z", `"type":"activity","kind":"meeting"`)

	// Format 2 carries forgotten opportunities: one won and left behind by
	// the window, one lost at once and invoiced afterwards.
	old := "acc-old"
	h.apply("", old, "2024-03-01T00:00:00Z", `"type":"opportunity","opportunity_id":"w-1","stage":"closed_won","amount":5000`)
	h.apply("", old, "2024-03-02T00:00:00Z", `"type":"opportunity","opportunity_id":"l-1","stage":"closed_lost","amount":700`)
	h.apply("", old, "2024-03-03T00:00:00Z", `"type":"order","order_id":"x-1","amount":12.5,"opportunity_id":"l-1"`)
	h.apply("", old, "2026-04-05T00:00:00Z", `"type":"activity","kind":"call"`)
}

// codecMore is applied after a restore to show the restored state behaves
// like the original.
func codecMore(h *codecHarness) {
	h.apply("", "acc-big", "2026-05-02T00:00:00Z", `"type":"activity","kind":"email"`)
	// ev-28 is among acc-big's last 16 ids, ev-3 has left the ring, and ev-30
	// belongs to another account: only the first is a duplicate. This
	// needs the restored ring and its next slot to be exact.
	for _, c := range []struct {
		id   string
		want scoring.Result
	}{{"ev-28", scoring.Duplicate}, {"ev-3", scoring.Applied}, {"ev-30", scoring.Applied}} {
		id, want := c.id, c.want
		if res := h.apply(id, "acc-big", "2026-05-03T00:00:00Z", `"type":"order","order_id":"again","amount":1`); res != want {
			h.tb.Errorf("%s on acc-big: result %v, want %v", id, res, want)
		}
	}
	for i := range 20 {
		h.apply("", "acc-big", fmt.Sprintf("2026-05-03T01:%02d:00Z", i), `"type":"activity","kind":"call"`)
	}
	h.apply("", "acc-pinned ☃", "2026-05-04T00:00:00Z", `"type":"account","snooze_alerts_until":null`)
	h.apply("", "acc-mid", "2026-05-05T00:00:00Z", `"type":"opportunity","opportunity_id":"m-1","stage":"closed_won","amount":210000`)
	h.apply("", "acc-new", "2026-05-06T00:00:00Z", `"type":"activity","kind":"call"`)
	h.evaluate("acc-big", codecTime("2026-07-01T00:00:00Z"))
}

func codecSnapshots(eng *scoring.Engine, asOf int64) string {
	var b bytes.Buffer
	for _, id := range eng.IDs() {
		s := eng.Snapshot(eng.Account(id), asOf)
		b.Write(s.AppendJSON(nil))
		b.WriteByte('\n')
	}
	return b.String()
}

// codecRestore encodes every account of h's engine and decodes them into a
// fresh harness.
func codecRestore(tb testing.TB, h *codecHarness) *codecHarness {
	tb.Helper()
	r := newCodecHarness(tb)
	r.n = h.n
	for _, id := range h.eng.IDs() {
		a := h.eng.Account(id)
		b := scoring.MarshalAccount(nil, a)
		got, err := scoring.UnmarshalAccount(b)
		if err != nil {
			tb.Fatalf("%s: UnmarshalAccount: %v", id, err)
		}
		if !reflect.DeepEqual(got, a) {
			tb.Errorf("%s: decoded state differs\n got %+v\nwant %+v", id, got, a)
		}
		if b2 := scoring.MarshalAccount(nil, got); !bytes.Equal(b2, b) {
			tb.Errorf("%s: re-encoding differs\n got %x\nwant %x", id, b2, b)
		}
		r.eng.Put(got)
	}
	return r
}

func TestCodecRoundTrip(t *testing.T) {
	h := newCodecHarness(t)
	codecScript(h)
	if h.eng.Len() != 5 {
		t.Fatalf("%d accounts", h.eng.Len())
	}
	if n := h.eng.Account("acc-old").Forgotten(); n != 2 {
		t.Fatalf("acc-old forgot %d opportunities, want 2; the round trip would not cover tombstones", n)
	}
	if _, open := h.eng.Account("acc-big").AlertOpen(); !open {
		t.Fatal("script did not open an alert on acc-big; the round trip would not cover alert state")
	}
	r := codecRestore(t, h)
	for _, asOf := range []int64{codecAsOf, codecTime("2026-03-01T00:00:00Z"), codecTime("2027-06-01T00:00:00Z")} {
		if got, want := codecSnapshots(r.eng, asOf), codecSnapshots(h.eng, asOf); got != want {
			t.Errorf("snapshots at %s after restore\n got %s\nwant %s", time.Unix(0, asOf).UTC(), got, want)
		}
	}
	// The restored engine goes on exactly like the original: same records,
	// same dedup decisions, same encoded state.
	h.log, r.log = nil, nil
	codecMore(h)
	codecMore(r)
	if g, w := bytes.Join(r.log, []byte("\n")), bytes.Join(h.log, []byte("\n")); !bytes.Equal(g, w) {
		t.Errorf("records after restore\n got %s\nwant %s", g, w)
	}
	for _, id := range h.eng.IDs() {
		if !bytes.Equal(scoring.MarshalAccount(nil, r.eng.Account(id)), scoring.MarshalAccount(nil, h.eng.Account(id))) {
			t.Errorf("%s: state diverged after restore", id)
		}
	}
	if got, want := codecSnapshots(r.eng, codecAsOf), codecSnapshots(h.eng, codecAsOf); got != want {
		t.Errorf("snapshots diverged\n got %s\nwant %s", got, want)
	}
}

// TestCodecStateOwnsItsStrings checks that nothing the engine keeps, and
// so nothing the codec writes, shares memory with a reused input buffer.
func TestCodecStateOwnsItsStrings(t *testing.T) {
	h, r := newCodecHarness(t), newCodecHarness(t)
	r.reuse = true
	codecScript(h)
	codecScript(r)
	codecMore(h)
	codecMore(r)
	if g, w := bytes.Join(r.log, []byte("\n")), bytes.Join(h.log, []byte("\n")); !bytes.Equal(g, w) {
		t.Errorf("records from a reused buffer\n got %s\nwant %s", g, w)
	}
	for _, id := range h.eng.IDs() {
		a := r.eng.Account(id)
		if a == nil {
			t.Fatalf("account %q missing (its id was overwritten?); have %q", id, r.eng.IDs())
		}
		if got, want := scoring.MarshalAccount(nil, a), scoring.MarshalAccount(nil, h.eng.Account(id)); !bytes.Equal(got, want) {
			t.Errorf("%s: state from a reused buffer differs\n got %q\nwant %q", id, got, want)
		}
	}
	if got, want := codecSnapshots(r.eng, codecAsOf), codecSnapshots(h.eng, codecAsOf); got != want {
		t.Errorf("snapshots from a reused buffer\n got %s\nwant %s", got, want)
	}
}

func TestCodecEmptyAccount(t *testing.T) {
	for _, a := range []*scoring.Account{{}, {ID: "x", Version: 1 << 63, Tier: scoring.Major}} {
		b := scoring.MarshalAccount([]byte("prefix"), a)
		if !bytes.HasPrefix(b, []byte("prefix")) {
			t.Fatalf("MarshalAccount does not append: %q", b)
		}
		got, err := scoring.UnmarshalAccount(b[len("prefix"):])
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, a) {
			t.Errorf("got %+v, want %+v", got, a)
		}
	}
}

// codecReadGolden returns the records of format v's golden file: each is
// a uvarint length and the record.
func codecReadGolden(tb testing.TB, v int) [][]byte {
	tb.Helper()
	bin, _ := codecGolden(v)
	b, err := os.ReadFile(bin)
	if err != nil {
		tb.Fatalf("%v (run go test ./scoring -run TestCodecGolden -update to create it)", err)
	}
	var recs [][]byte
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			tb.Fatalf("%s is corrupt", bin)
		}
		recs = append(recs, b[k:k+int(n)])
		b = b[k+int(n):]
	}
	return recs
}

// codecCheckGolden pins format version v: records written by the release
// that wrote v must decode, forever, to the same state. The .bin file is
// therefore written only when it does not exist (by the release whose
// latest format is v); -update rewrites only the expected snapshots
// (.json), which may change when the snapshot rendering or the default
// configuration does, never because the reader changed.
func codecCheckGolden(t *testing.T, v int) *scoring.Engine {
	bin, js := codecGolden(v)
	if _, err := os.Stat(bin); *update && os.IsNotExist(err) && v == codecLatest {
		h := newCodecHarnessConfig(t, codecConfig(v))
		codecScript(h)
		if v >= 3 {
			codecCapacity(h)
		}
		var out []byte
		for _, id := range h.eng.IDs() {
			rec := scoring.MarshalAccount(nil, h.eng.Account(id))
			out = binary.AppendUvarint(out, uint64(len(rec)))
			out = append(out, rec...)
		}
		if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, out, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", bin)
	}
	recs := codecReadGolden(t, v)
	eng := scoring.NewEngine(scoring.NewParams(codecConfig(v)))
	for i, rec := range recs {
		if rec[0] != 'P' || int(rec[1]) != v {
			t.Fatalf("record %d is not a version %d record: % x", i, v, rec[:2])
		}
		a, err := scoring.UnmarshalAccount(rec)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		eng.Put(a)
		// While v is also the version written, the writer must reproduce
		// the record byte for byte, and EncodedSize must know its size.
		out := scoring.MarshalAccount(nil, a)
		if int(out[1]) == v && !bytes.Equal(out, rec) {
			t.Errorf("record %d (%s): writer changed format %d without a version bump\n got %x\nwant %x", i, a.ID, v, out, rec)
		}
		if n := scoring.EncodedSize(a); n != len(out) {
			t.Errorf("record %d (%s): EncodedSize %d, encoded %d bytes", i, a.ID, n, len(out))
		}
	}
	got := codecSnapshots(eng, codecAsOf)
	if *update {
		if err := os.WriteFile(js, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", js)
	}
	want, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("snapshots from %s\n got %s\nwant %s", bin, got, want)
	}
	return eng
}

func TestCodecGolden(t *testing.T) {
	t.Run("version 1", func(t *testing.T) {
		eng := codecCheckGolden(t, 1)
		if eng.Len() != 4 {
			t.Errorf("golden file has %d accounts, want 4", eng.Len())
		}
		// The pinned state covers what the codec must carry.
		big := eng.Account("acc-big")
		if _, alert := big.AlertOpen(); !alert || big.Name() != `Big Co "Ltd"` || big.Version != 29 || len(big.Opportunities()) != 3 {
			t.Errorf("acc-big from the golden file: alert open %v, name %q, version %d, opportunities %+v",
				alert, big.Name(), big.Version, big.Opportunities())
		}
		pinned := eng.Account("acc-pinned ☃")
		if w, ok := pinned.Wallet(); ok || w != 0 || pinned.Owner() != "rep-3" || pinned.Name() != "" || pinned.SnoozeUntil() == 0 {
			t.Errorf("acc-pinned from the golden file: %+v", pinned)
		}
		// Version 1 held lost opportunities; the first evaluation forgets
		// them without changing a figure.
		before := codecSnapshots(eng, codecAsOf)
		var out scoring.Output
		eng.Evaluate(big, codecAsOf, &out)
		if big.Forgotten() != 1 || len(big.Opportunities()) != 2 {
			t.Errorf("acc-big after an evaluation: %d forgotten, opportunities %+v", big.Forgotten(), big.Opportunities())
		}
		// The evaluation adds a version (the clock moved since the record
		// was written); nothing else may change.
		unversioned := regexp.MustCompile(`"version":\d+,`)
		before = unversioned.ReplaceAllString(before, "")
		if after := unversioned.ReplaceAllString(codecSnapshots(eng, codecAsOf), ""); after != before {
			t.Errorf("forgetting the lost opportunity changed a snapshot\n got %s\nwant %s", after, before)
		}
	})
	t.Run("version 2", func(t *testing.T) {
		eng := codecCheckGolden(t, 2)
		if eng.Len() != 5 {
			t.Errorf("golden file has %d accounts, want 5", eng.Len())
		}
		if big := eng.Account("acc-big"); big.Forgotten() != 1 || len(big.Opportunities()) != 2 {
			t.Errorf("acc-big: %d forgotten, opportunities %+v", big.Forgotten(), big.Opportunities())
		}
		if old := eng.Account("acc-old"); old.Forgotten() != 2 || len(old.Opportunities()) != 0 {
			t.Errorf("acc-old: %d forgotten, opportunities %+v", old.Forgotten(), old.Opportunities())
		}
		for _, id := range eng.IDs() {
			if a := eng.Account(id); a.Qualified() != a.Tier {
				t.Errorf("%s: qualified %v, tier %v: version 2 knew no caps", id, a.Qualified(), a.Tier)
			}
		}
	})
	t.Run("version 3", func(t *testing.T) {
		eng := codecCheckGolden(t, 3)
		if eng.Len() != 7 {
			t.Errorf("golden file has %d accounts, want 7", eng.Len())
		}
		// Major holds one account: three qualify, the biggest has it.
		for _, c := range []struct {
			id     string
			tier   scoring.Tier
			reason string
		}{
			{"acc-big", scoring.Major, "capacity: value 3,000,000.50 has major's one place"},
			{"acc-cap-1", scoring.Named, "capacity: rank 2 by value, major holds 1"},
			{"acc-cap-2", scoring.Named, "capacity: rank over 2 by value, major holds 1"},
		} {
			a := eng.Account(c.id)
			if a.Tier != c.tier || a.Qualified() != scoring.Major || eng.TierReason(a) != c.reason {
				t.Errorf("%s: tier %v, qualified %v, reason %q; want %v, major, %q", c.id, a.Tier, a.Qualified(), eng.TierReason(a), c.tier, c.reason)
			}
		}
	})
}

func TestCodecBadRecords(t *testing.T) {
	var recs [][]byte
	for v := 1; v <= codecLatest; v++ {
		recs = append(recs, codecReadGolden(t, v)...)
	}
	for i, rec := range recs {
		// Every strict prefix is refused with a clear error, never a panic.
		for n := range len(rec) {
			b := make([]byte, n)
			copy(b, rec)
			a, err := scoring.UnmarshalAccount(b)
			if err == nil {
				t.Fatalf("record %d cut to %d bytes was accepted: %+v", i, n, a)
			}
			if a != nil || !strings.HasPrefix(err.Error(), "state record: ") {
				t.Fatalf("record %d cut to %d bytes: %v", i, n, err)
			}
		}
		// Trailing bytes are refused.
		if _, err := scoring.UnmarshalAccount(append(append([]byte(nil), rec...), 0)); err == nil || !strings.Contains(err.Error(), "trailing bytes") {
			t.Errorf("record %d with a trailing byte: %v", i, err)
		}
		// Every single-byte corruption is either refused or decodes to a
		// state that re-encodes stably.
		for j := range rec {
			b := append([]byte(nil), rec...)
			b[j] ^= 0xff
			a, err := scoring.UnmarshalAccount(b)
			if err != nil {
				continue
			}
			m := scoring.MarshalAccount(nil, a)
			a2, err := scoring.UnmarshalAccount(m)
			if err != nil || !bytes.Equal(scoring.MarshalAccount(nil, a2), m) {
				t.Errorf("record %d flipped at %d: unstable: %v", i, j, err)
			}
		}
	}

	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "bad magic"},
		{"one byte", []byte{'P'}, "bad magic"},
		{"wrong magic", []byte{'X', 1}, "bad magic"},
		{"JSON instead", []byte(`{"account_id":"a"}`), "bad magic"},
		{"future version", append([]byte{'P', 4}, recs[0][2:]...), "format version 4 is newer than this release understands"},
		{"version 255", []byte{'P', 255}, "format version 255"},
		{"version 0", []byte{'P', 0}, "format version 0"},
		{"header only", []byte{'P', 1}, "state record: "},
		{"version 2 header only", []byte{'P', 2}, "state record: "},
		{"version 3 header only", []byte{'P', 3}, "state record: "},
		{"huge string length", []byte{'P', 1, 0xff, 0xff, 0xff, 0xff, 0x0f}, "truncated string"},
		{"overlong varint", []byte{'P', 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "bad varint"},
	}
	for _, tt := range tests {
		a, err := scoring.UnmarshalAccount(tt.in)
		if err == nil || a != nil {
			t.Errorf("%s: accepted: %+v", tt.name, a)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %q, want it to mention %q", tt.name, err, tt.want)
		}
	}
	if _, err := scoring.UnmarshalAccount(append([]byte{'P', 4}, recs[0][2:]...)); err == nil || !strings.Contains(err.Error(), "upgrade") {
		t.Errorf("future version should say what to do: %v", err)
	}
}

// TestCodecFieldOutOfRange patches the tier byte of an empty account's
// record ('P' 2, id length 0, version 0, tier).
func TestCodecFieldOutOfRange(t *testing.T) {
	rec := scoring.MarshalAccount(nil, &scoring.Account{})
	if !bytes.Equal(rec[:5], []byte{'P', codecLatest, 0, 0, 0}) {
		t.Fatalf("unexpected empty record layout % x", rec)
	}
	b := append([]byte(nil), rec...)
	b[4] = byte(scoring.Major) + 1
	if _, err := scoring.UnmarshalAccount(b); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("tier %d: %v", b[4], err)
	}
}

// FuzzUnmarshalAccount feeds arbitrary bytes to the state reader: it never
// panics, and what it accepts re-encodes stably and can be scored.
func FuzzUnmarshalAccount(f *testing.F) {
	h := newCodecHarness(f)
	codecScript(h)
	for _, id := range h.eng.IDs() {
		f.Add(scoring.MarshalAccount(nil, h.eng.Account(id)))
	}
	for v := 1; v <= codecLatest; v++ {
		bin, _ := codecGolden(v)
		if b, err := os.ReadFile(bin); err == nil {
			f.Add(b) // several records with length prefixes: refused
		}
	}
	f.Add([]byte{})
	f.Add([]byte{'P', 1})
	f.Add(scoring.MarshalAccount(nil, &scoring.Account{}))
	eng := scoring.NewEngine(scoring.NewParams(config.Default()))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := scoring.UnmarshalAccount(b)
		if err != nil {
			if a != nil {
				t.Fatal("account and error")
			}
			if !strings.HasPrefix(err.Error(), "state record: ") {
				t.Fatalf("unclear error %q", err)
			}
			return
		}
		m1 := scoring.MarshalAccount(nil, a)
		if n := scoring.EncodedSize(a); n != len(m1) {
			t.Fatalf("EncodedSize %d, encoded %d bytes", n, len(m1))
		}
		a2, err := scoring.UnmarshalAccount(m1)
		if err != nil {
			t.Fatalf("re-encoded record refused: %v\ninput %x\nre-encoded %x", err, b, m1)
		}
		if m2 := scoring.MarshalAccount(nil, a2); !bytes.Equal(m1, m2) {
			t.Fatalf("marshal→unmarshal→marshal differs\n%x\n%x", m1, m2)
		}
		if !reflect.DeepEqual(a, a2) {
			t.Fatalf("decoded states differ\n%+v\n%+v", a, a2)
		}
		// A restored account, however odd, can be snapshotted.
		s := eng.Snapshot(a, codecAsOf)
		_ = s.AppendJSON(nil)
	})
}

package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pyramid-crm/pyramid/config"
	"github.com/pyramid-crm/pyramid/consumer"
	"github.com/pyramid-crm/pyramid/kafkaio"
	"github.com/pyramid-crm/pyramid/metrics"
)

// Paths are relative to this directory (go test runs in it); repo is the
// module root.
const repo = ".."

// knownEnv mirrors the environment variables `pyramid run` reads (each
// --flag has a PYRAMID_* twin, plus the secrets that have no flag). Keep it
// in step with cmd/pyramid: a deployment that sets a variable the binary
// does not read is a silent misconfiguration.
var knownEnv = map[string]bool{
	"PYRAMID_BROKERS":              true, // --brokers
	"PYRAMID_TOPICS":               true, // --topics
	"PYRAMID_GROUP":                true, // --group
	"PYRAMID_CONFIG":               true, // --config
	"PYRAMID_SINK_DIR":             true, // --sink-dir
	"PYRAMID_CLICKHOUSE_DSN":       true, // --clickhouse
	"PYRAMID_HTTP":                 true, // --http
	"PYRAMID_LOG_LEVEL":            true, // --log-level
	"PYRAMID_API_TOKEN":            true, // bearer token for /v1/*
	"PYRAMID_ALERT_WEBHOOK":        true, // per-account alert webhook URL
	"PYRAMID_ALERT_WEBHOOK_SECRET": true, // its signing secret
	// Kafka security, read by cmd/pyramid/kafka.go (no deployment sets them
	// by default; they are here so one may).
	"PYRAMID_KAFKA_TLS":                true,
	"PYRAMID_KAFKA_TLS_CA":             true,
	"PYRAMID_KAFKA_SASL":               true,
	"PYRAMID_KAFKA_SASL_USER":          true,
	"PYRAMID_KAFKA_SASL_PASSWORD":      true,
	"PYRAMID_KAFKA_SASL_PASSWORD_FILE": true,
}

// knownFlags mirrors the flags of each subcommand used in deployments.
var knownFlags = map[string][]string{
	"run": {"brokers", "topics", "group", "config", "sink-dir", "clickhouse", "http", "log-level", "shutdown-timeout"},
	"gen": {"brokers", "rate", "accounts", "events", "seed", "currencies", "foreign-share",
		"start", "months", "bad-ratio", "dup-ratio", "topic-prefix"},
	"migrate": {"clickhouse", "timeout", "create-database", "dry-run"},
	"broker":  {"listen", "partitions", "data-dir", "topics", "log-level", "log-format"},
	"demo":    nil,
}

// inputTopics are the topics `pyramid run` consumes; topics are every topic
// the stack needs.
var (
	inputTopics = kafkaio.InputTopics(kafkaio.DefaultInputPrefix)
	allTopics   = append(append([]string{}, inputTopics...),
		kafkaio.State, kafkaio.DeadLetters, kafkaio.Alerts, kafkaio.AlertsDeadLetters)
)

// chRelations are the ClickHouse tables and views of docs/clickhouse.md.
var chRelations = map[string]bool{
	"account_snapshots": true, "tier_changes": true, "account_alerts": true,
	"account_latest": true, "tier_distribution": true, "rep_coverage": true, "neglected_accounts": true,
	"tier_capacity": true,
}

const httpPort = 8080

// ---- helpers --------------------------------------------------------------

type obj = map[string]any

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// yamlDocs decodes every document of a YAML file (empty documents skipped).
func yamlDocs(t testing.TB, name string) []obj {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(read(t, name)))
	var docs []obj
	for {
		var d obj
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s: no YAML document", name)
	}
	return docs
}

func yamlDoc(t testing.TB, name string) obj {
	t.Helper()
	docs := yamlDocs(t, name)
	if len(docs) != 1 {
		t.Fatalf("%s: %d documents, want 1", name, len(docs))
	}
	return docs[0]
}

// get walks maps by key and lists by decimal index; nil when absent.
func get(v any, keys ...string) any {
	for _, k := range keys {
		switch x := v.(type) {
		case obj:
			v = x[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func str(v any, keys ...string) string {
	switch x := get(v, keys...).(type) {
	case string:
		return x
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

func list(v any, keys ...string) []any {
	l, _ := get(v, keys...).([]any)
	return l
}

func mapOf(v any, keys ...string) obj {
	m, _ := get(v, keys...).(obj)
	return m
}

func strs(v any, keys ...string) []string {
	var out []string
	for _, x := range list(v, keys...) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

func exists(t testing.TB, name string) bool {
	t.Helper()
	_, err := os.Stat(name)
	return err == nil
}

// subset reports whether every key=value of sel is in labels.
func subset(sel, labels obj) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if fmt.Sprint(labels[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

// ---- every file parses ------------------------------------------------------

func TestEveryFileParses(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(p) {
		case ".yml", ".yaml":
			yamlDocs(t, p)
			n++
		case ".json":
			var v any
			if err := json.Unmarshal(read(t, p), &v); err != nil {
				t.Errorf("%s: %v", p, err)
			}
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	yamlDocs(t, filepath.Join(repo, "docker-compose.yml"))
	if n < 10 {
		t.Errorf("found only %d YAML/JSON files under deploy/", n)
	}
}

// ---- metric names -------------------------------------------------------------

var metricToken = regexp.MustCompile(`\bpyramid_[a-z0-9_]*[a-z0-9]`)

func TestMetricNamesExist(t *testing.T) {
	known := map[string]bool{}
	for _, n := range metrics.Names {
		known[n] = true
	}
	files := []string{"prometheus/rules.yml", "prometheus/rules_test.yml", "alertmanager/alertmanager.yml"}
	dashboards, _ := filepath.Glob("grafana/dashboards/*.json")
	if len(dashboards) == 0 {
		t.Fatal("no dashboard under grafana/dashboards")
	}
	files = append(files, dashboards...)
	used := map[string]bool{}
	for _, f := range files {
		for _, tok := range metricToken.FindAllString(string(read(t, f)), -1) {
			name := tok
			if !known[name] {
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if s := strings.TrimSuffix(tok, suf); s != tok && known[s] {
						name = s
					}
				}
			}
			if !known[name] {
				t.Errorf("%s: metric %s is not in metrics.Names", f, tok)
			}
			used[name] = true
		}
	}
	// The rules and dashboard must actually watch what docs/operations.md promises.
	for _, m := range []string{"pyramid_neglected_accounts", "pyramid_consumer_lag", "pyramid_sink_up",
		"pyramid_sink_errors_total", "pyramid_dlq_total", "pyramid_state_restore_seconds",
		"pyramid_events_total", "pyramid_sink_flush_seconds"} {
		if !used[m] {
			t.Errorf("%s is used by no rule or dashboard", m)
		}
	}
}

// ---- alert rules ------------------------------------------------------------------

type rule struct {
	Alert       string
	Expr        string
	For         string
	Labels      map[string]string
	Annotations map[string]string
}

func loadRules(t testing.TB) []rule {
	t.Helper()
	var f struct {
		Groups []struct {
			Name  string
			Rules []rule
		}
	}
	if err := yaml.Unmarshal(read(t, "prometheus/rules.yml"), &f); err != nil {
		t.Fatal(err)
	}
	var out []rule
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("rules.yml has no alerting rule")
	}
	return out
}

var tierSelector = regexp.MustCompile(`pyramid_neglected_accounts\{tier="([a-z_]+)"\}`)

func TestAlertRulesLabelsAndAnnotations(t *testing.T) {
	tiers := map[string]bool{}
	for _, n := range config.TierNames {
		tiers[n] = true
	}
	neglectTiers := map[string]bool{}
	for _, r := range loadRules(t) {
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
		}
		if s := r.Labels["team"]; s != "sales" && s != "platform" {
			t.Errorf("%s: team %q, want sales or platform", r.Alert, s)
		}
		for _, a := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: no %s annotation", r.Alert, a)
			}
		}
		if m := tierSelector.FindStringSubmatch(r.Expr); m != nil {
			if r.Labels["tier"] != m[1] {
				t.Errorf("%s: selects tier %q but is labelled tier %q", r.Alert, m[1], r.Labels["tier"])
			}
			neglectTiers[m[1]] = true
		}
		if tier, ok := r.Labels["tier"]; ok && !tiers[tier] {
			t.Errorf("%s: tier label %q is not a tier (%v)", r.Alert, tier, config.TierNames)
		}
	}
	for _, tier := range []string{config.Major, config.Named} {
		if !neglectTiers[tier] {
			t.Errorf("no alert on neglected %s accounts", tier)
		}
	}
}

// TestEveryAlertIsUnitTested checks rules_test.yml has, for every alert, a
// case where it fires and one where it does not. promtool runs the cases.
func TestEveryAlertIsUnitTested(t *testing.T) {
	var f struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				Alertname string
				ExpAlerts []any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		}
	}
	if err := yaml.Unmarshal(read(t, "prometheus/rules_test.yml"), &f); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.RuleFiles, []string{"rules.yml"}) {
		t.Errorf("rules_test.yml rule_files = %v, want [rules.yml]", f.RuleFiles)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	alerts := map[string]bool{}
	for _, r := range loadRules(t) {
		alerts[r.Alert] = true
	}
	for _, tc := range f.Tests {
		for _, a := range tc.AlertRuleTest {
			if !alerts[a.Alertname] {
				t.Errorf("rules_test.yml tests %q, which rules.yml does not define", a.Alertname)
			}
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	for a := range alerts {
		if !fires[a] {
			t.Errorf("%s: no test case where it fires", a)
		}
		if !silent[a] {
			t.Errorf("%s: no test case where it stays silent", a)
		}
	}
}

// dashboardLink matches the dashboard annotation of a rule.
var dashboardLink = regexp.MustCompile(`^/d/([^/?]+)(?:/[^?]*)?(?:\?viewPanel=(\d+))?$`)

func TestRuleDashboardLinks(t *testing.T) {
	dash := loadDashboard(t)
	ids := panelIDs(dash)
	for _, r := range loadRules(t) {
		link, ok := r.Annotations["dashboard"]
		if !ok {
			continue
		}
		m := dashboardLink.FindStringSubmatch(link)
		if m == nil {
			t.Errorf("%s: dashboard annotation %q is not /d/<uid>[/slug][?viewPanel=<id>]", r.Alert, link)
			continue
		}
		if m[1] != str(dash, "uid") {
			t.Errorf("%s: links dashboard %q; the dashboard's uid is %q", r.Alert, m[1], str(dash, "uid"))
		}
		if m[2] != "" {
			id, _ := strconv.Atoi(m[2])
			if !ids[id] {
				t.Errorf("%s: links panel %d, which the dashboard does not have", r.Alert, id)
			}
		}
	}
}

// ---- prometheus.yml -------------------------------------------------------------------

func TestPrometheusConfig(t *testing.T) {
	p := yamlDoc(t, "prometheus/prometheus.yml")
	rf := strs(p, "rule_files")
	if len(rf) == 0 {
		t.Error("prometheus.yml loads no rule_files")
	}
	for _, f := range rf {
		if !exists(t, filepath.Join("prometheus", f)) {
			t.Errorf("prometheus.yml rule file %s does not exist next to it", f)
		}
	}
	services := composeServices(t)
	var pyramidJob bool
	for _, sc := range list(p, "scrape_configs") {
		for _, st := range list(sc, "static_configs") {
			for _, target := range strs(st, "targets") {
				host, port, ok := strings.Cut(target, ":")
				if !ok {
					t.Errorf("scrape target %q has no port", target)
					continue
				}
				if host != "localhost" && services[host] == nil {
					t.Errorf("scrape target %q: no compose service %q", target, host)
				}
				if str(sc, "job_name") == "pyramid" {
					pyramidJob = true
					if port != strconv.Itoa(httpPort) {
						t.Errorf("pyramid scrape target %q, want port %d", target, httpPort)
					}
					if mp := str(sc, "metrics_path"); mp != "" && mp != "/metrics" {
						t.Errorf("pyramid metrics_path %q, want /metrics", mp)
					}
				}
			}
		}
	}
	if !pyramidJob {
		t.Error(`prometheus.yml has no job_name "pyramid" (the rules select job="pyramid")`)
	}
	var am bool
	for _, a := range list(p, "alerting", "alertmanagers") {
		for _, st := range list(a, "static_configs") {
			for _, target := range strs(st, "targets") {
				host, _, _ := strings.Cut(target, ":")
				if services[host] == nil {
					t.Errorf("alertmanager target %q: no compose service %q", target, host)
				}
				am = true
			}
		}
	}
	if !am {
		t.Error("prometheus.yml sends alerts to no Alertmanager")
	}
}

// ---- alertmanager.yml --------------------------------------------------------------------

var matcher = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"?([^"]*)"?\s*$`)

type amRoute struct {
	path     string
	receiver string
	matchers map[string]string
	children []amRoute
}

func parseRoute(t testing.TB, r obj, p string, inherited string) amRoute {
	t.Helper()
	out := amRoute{path: p, receiver: str(r, "receiver"), matchers: map[string]string{}}
	if out.receiver == "" {
		out.receiver = inherited
	}
	for _, m := range strs(r, "matchers") {
		sm := matcher.FindStringSubmatch(m)
		if sm == nil || sm[2] != "=" {
			t.Errorf("%s: matcher %q: this test understands only label=\"value\"", p, m)
			continue
		}
		out.matchers[sm[1]] = sm[3]
	}
	for i, c := range list(r, "routes") {
		out.children = append(out.children, parseRoute(t, c.(obj), fmt.Sprintf("%s.routes[%d]", p, i), out.receiver))
	}
	return out
}

// match returns the receiver Alertmanager picks for labels (first matching
// child, depth first, no continue) and whether a child route matched.
func (r amRoute) match(labels map[string]string) (string, bool) {
	for _, c := range r.children {
		ok := true
		for k, v := range c.matchers {
			if labels[k] != v {
				ok = false
			}
		}
		if ok {
			recv, _ := c.match(labels)
			return recv, true
		}
	}
	return r.receiver, false
}

func (r amRoute) receivers(out map[string]bool) {
	out[r.receiver] = true
	for _, c := range r.children {
		c.receivers(out)
	}
}

func TestAlertmanagerRouting(t *testing.T) {
	am := yamlDoc(t, "alertmanager/alertmanager.yml")
	receivers := map[string]bool{}
	for _, r := range list(am, "receivers") {
		receivers[str(r, "name")] = true
	}
	root := parseRoute(t, mapOf(am, "route"), "route", "")
	used := map[string]bool{}
	root.receivers(used)
	for r := range used {
		if !receivers[r] {
			t.Errorf("route uses receiver %q, which is not defined", r)
		}
	}
	for r := range receivers {
		if !used[r] {
			t.Errorf("receiver %q is used by no route", r)
		}
	}
	// Every alert reaches a specific route, and sales and platform alerts
	// do not end up with each other's receivers.
	for _, r := range loadRules(t) {
		labels := map[string]string{"alertname": r.Alert}
		for k, v := range r.Labels {
			labels[k] = v
		}
		recv, specific := root.match(labels)
		if !specific {
			t.Errorf("%s %v: matches no route, falls to the default receiver %q", r.Alert, r.Labels, recv)
		}
		if !strings.HasPrefix(recv, r.Labels["team"]+"-") {
			t.Errorf("%s (team %s) is routed to %q", r.Alert, r.Labels["team"], recv)
		}
	}
	// Label values the routes match on must be values the rules produce.
	produced := map[string]map[string]bool{}
	for _, r := range loadRules(t) {
		for k, v := range r.Labels {
			if produced[k] == nil {
				produced[k] = map[string]bool{}
			}
			produced[k][v] = true
		}
	}
	var walk func(amRoute)
	walk = func(r amRoute) {
		for k, v := range r.matchers {
			if k != "alertname" && !produced[k][v] {
				t.Errorf("%s matches %s=%q, which no rule sets", r.path, k, v)
			}
		}
		for _, c := range r.children {
			walk(c)
		}
	}
	walk(root)
	for _, k := range []string{"group_by", "group_wait", "group_interval", "repeat_interval"} {
		if get(am, "route", k) == nil {
			t.Errorf("top-level route sets no %s", k)
		}
	}
}

// ---- grafana -----------------------------------------------------------------------------

func loadDashboard(t testing.TB) obj {
	t.Helper()
	var d obj
	if err := json.Unmarshal(read(t, "grafana/dashboards/pyramid.json"), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func allPanels(d obj) []obj {
	var out []obj
	var walk func([]any)
	walk = func(ps []any) {
		for _, p := range ps {
			if m, ok := p.(obj); ok {
				out = append(out, m)
				walk(list(m, "panels"))
			}
		}
	}
	walk(list(d, "panels"))
	return out
}

func panelIDs(d obj) map[int]bool {
	ids := map[int]bool{}
	for _, p := range allPanels(d) {
		if f, ok := p["id"].(float64); ok {
			ids[int(f)] = true
		}
	}
	return ids
}

var sqlRelation = regexp.MustCompile(`(?i)\b(?:FROM|JOIN)\s+(?:[a-z_][a-z0-9_]*\.)?([a-z_][a-z0-9_]*)`)

func TestGrafana(t *testing.T) {
	ds := yamlDoc(t, "grafana/provisioning/datasources/datasources.yml")
	uids := map[string]string{}
	for _, d := range list(ds, "datasources") {
		uids[str(d, "uid")] = str(d, "type")
	}
	if uids["pyramid-clickhouse"] != "grafana-clickhouse-datasource" {
		t.Errorf("no grafana-clickhouse-datasource with uid pyramid-clickhouse: %v", uids)
	}
	if uids["pyramid-prometheus"] != "prometheus" {
		t.Errorf("no prometheus datasource with uid pyramid-prometheus: %v", uids)
	}

	d := loadDashboard(t)
	if str(d, "uid") == "" || str(d, "title") == "" {
		t.Error("dashboard has no uid or title")
	}
	seen := map[float64]bool{}
	kinds := map[string]int{}
	tables := map[string]bool{}
	for _, p := range allPanels(d) {
		id, _ := p["id"].(float64)
		title := str(p, "title")
		if id == 0 || seen[id] {
			t.Errorf("panel %q: id %v missing or repeated", title, p["id"])
		}
		seen[id] = true
		if str(p, "type") == "row" {
			continue
		}
		if get(p, "gridPos", "w") == nil || get(p, "gridPos", "h") == nil {
			t.Errorf("panel %q has no gridPos", title)
		}
		targets := list(p, "targets")
		if len(targets) == 0 {
			t.Errorf("panel %q has no query", title)
		}
		for _, tg := range targets {
			uid := str(tg, "datasource", "uid")
			typ, ok := uids[uid]
			if !ok {
				t.Errorf("panel %q: datasource uid %q is not provisioned", title, uid)
				continue
			}
			if str(tg, "datasource", "type") != typ {
				t.Errorf("panel %q: datasource %s has type %q in the dashboard, %q provisioned", title, uid, str(tg, "datasource", "type"), typ)
			}
			kinds[typ]++
			switch typ {
			case "prometheus":
				if strings.TrimSpace(str(tg, "expr")) == "" {
					t.Errorf("panel %q: empty PromQL", title)
				}
			case "grafana-clickhouse-datasource":
				sql := str(tg, "rawSql")
				if str(tg, "editorType") != "sql" || strings.TrimSpace(sql) == "" {
					t.Errorf("panel %q: ClickHouse target needs editorType sql and rawSql", title)
				}
				rels := sqlRelation.FindAllStringSubmatch(sql, -1)
				if len(rels) == 0 {
					t.Errorf("panel %q: no FROM in %q", title, sql)
				}
				for _, m := range rels {
					if !chRelations[m[1]] {
						t.Errorf("panel %q: %q reads %s, which is not a Pyramid table or view", title, sql, m[1])
					}
					tables[m[1]] = true
				}
			}
		}
	}
	if kinds["prometheus"] == 0 || kinds["grafana-clickhouse-datasource"] == 0 {
		t.Errorf("dashboard queries per datasource type: %v; want both", kinds)
	}
	for _, want := range []string{"account_latest", "tier_changes", "rep_coverage", "neglected_accounts"} {
		if !tables[want] {
			t.Errorf("no dashboard panel reads %s", want)
		}
	}
}

// ---- kubernetes --------------------------------------------------------------------------

type k8sObjects map[string]obj // "Kind/name" -> object

func loadK8s(t testing.TB) k8sObjects {
	t.Helper()
	files, _ := filepath.Glob("k8s/*.yaml")
	objs := k8sObjects{}
	for _, f := range files {
		for _, d := range yamlDocs(t, f) {
			if str(d, "kind") == "Kustomization" {
				for _, r := range strs(d, "resources") {
					if !exists(t, filepath.Join("k8s", r)) {
						t.Errorf("kustomization.yaml lists %s, which does not exist", r)
					}
				}
				continue
			}
			key := str(d, "kind") + "/" + str(d, "metadata", "name")
			if objs[key] != nil {
				t.Errorf("%s defined twice", key)
			}
			objs[key] = d
		}
	}
	for _, k := range []string{"Deployment/pyramid", "Service/pyramid", "PodDisruptionBudget/pyramid", "ServiceMonitor/pyramid"} {
		if objs[k] == nil {
			t.Fatalf("deploy/k8s has no %s", k)
		}
	}
	return objs
}

func container(t testing.TB, objs k8sObjects) obj {
	t.Helper()
	cs := list(objs["Deployment/pyramid"], "spec", "template", "spec", "containers")
	if len(cs) != 1 {
		t.Fatalf("Deployment/pyramid has %d containers, want 1", len(cs))
	}
	return cs[0].(obj)
}

// portNumber resolves a port given by number or by container port name.
func portNumber(c obj, port any) int {
	switch p := port.(type) {
	case int:
		return p
	case string:
		for _, cp := range list(c, "ports") {
			if str(cp, "name") == p {
				n, _ := get(cp, "containerPort").(int)
				return n
			}
		}
	}
	return 0
}

func TestK8sPortsProbesAndSelectors(t *testing.T) {
	objs := loadK8s(t)
	dep := objs["Deployment/pyramid"]
	c := container(t, objs)
	podLabels := mapOf(dep, "spec", "template", "metadata", "labels")

	if p := portNumber(c, "http"); p != httpPort {
		t.Errorf("container port http = %d, want %d", p, httpPort)
	}
	for probe, want := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if got := str(c, probe, "httpGet", "path"); got != want {
			t.Errorf("%s path %q, want %q", probe, got, want)
		}
		if p := portNumber(c, get(c, probe, "httpGet", "port")); p != httpPort {
			t.Errorf("%s port resolves to %d, want %d", probe, p, httpPort)
		}
	}
	if sp := mapOf(c, "startupProbe"); sp != nil {
		if p := portNumber(c, get(sp, "httpGet", "port")); p != httpPort {
			t.Errorf("startupProbe port resolves to %d, want %d", p, httpPort)
		}
	}

	svc := objs["Service/pyramid"]
	svcPorts := map[string]bool{}
	for _, sp := range list(svc, "spec", "ports") {
		svcPorts[str(sp, "name")] = true
		if p := portNumber(c, get(sp, "targetPort")); p != httpPort {
			t.Errorf("Service port %s: targetPort %v resolves to %d, want %d", str(sp, "name"), get(sp, "targetPort"), p, httpPort)
		}
	}
	if !subset(mapOf(svc, "spec", "selector"), podLabels) {
		t.Errorf("Service selector %v does not select the pods %v", mapOf(svc, "spec", "selector"), podLabels)
	}
	if !subset(mapOf(dep, "spec", "selector", "matchLabels"), podLabels) {
		t.Error("Deployment selector does not match its pod template labels")
	}
	if pdb := objs["PodDisruptionBudget/pyramid"]; !subset(mapOf(pdb, "spec", "selector", "matchLabels"), podLabels) {
		t.Error("PodDisruptionBudget selector does not select the pods")
	}
	sm := objs["ServiceMonitor/pyramid"]
	if !subset(mapOf(sm, "spec", "selector", "matchLabels"), mapOf(svc, "metadata", "labels")) {
		t.Error("ServiceMonitor selector does not select Service/pyramid")
	}
	eps := list(sm, "spec", "endpoints")
	if len(eps) == 0 {
		t.Error("ServiceMonitor has no endpoints")
	}
	for _, ep := range eps {
		if !svcPorts[str(ep, "port")] {
			t.Errorf("ServiceMonitor endpoint port %q is not a Service port name", str(ep, "port"))
		}
		if p := str(ep, "path"); p != "" && p != "/metrics" {
			t.Errorf("ServiceMonitor path %q, want /metrics", p)
		}
	}
	// The rules select job="pyramid"; jobLabel names the Service label
	// whose value becomes the job.
	if jl := str(sm, "spec", "jobLabel"); jl == "" || str(svc, "metadata", "labels", jl) != "pyramid" {
		t.Errorf(`ServiceMonitor jobLabel %q does not give job="pyramid"`, jl)
	}
}

// TestK8sMigratesFirst: an init container runs pyramid migrate with the
// main container's image and environment, so a backfill too long for
// pyramid run's start is done before it.
func TestK8sMigratesFirst(t *testing.T) {
	objs := loadK8s(t)
	c := container(t, objs)
	inits := list(objs["Deployment/pyramid"], "spec", "template", "spec", "initContainers")
	if len(inits) != 1 {
		t.Fatalf("Deployment/pyramid has %d init containers, want 1 running pyramid migrate", len(inits))
	}
	m := inits[0].(obj)
	if args := strs(m, "args"); len(args) == 0 || args[0] != "migrate" {
		t.Errorf("init container args %v, want pyramid migrate", args)
	} else {
		checkFlags(t, "k8s init container", args)
	}
	if str(m, "image") != str(c, "image") {
		t.Errorf("init container image %q, main container %q", str(m, "image"), str(c, "image"))
	}
	if !reflect.DeepEqual(get(m, "envFrom"), get(c, "envFrom")) {
		t.Errorf("init container envFrom %v, main container %v: migrate needs the same DSN", get(m, "envFrom"), get(c, "envFrom"))
	}
	if get(m, "securityContext", "allowPrivilegeEscalation") != false || str(m, "resources", "limits", "memory") == "" {
		t.Error("init container allows privilege escalation or sets no memory limit")
	}
}

// checkShutdown checks that args, a `pyramid run` command line, set
// --shutdown-timeout explicitly and well inside grace, the time the
// orchestrator gives between SIGTERM and SIGKILL: the whole stop (last
// flush, commit, group leave, closing the sinks and the webhook's queue)
// keeps within --shutdown-timeout, and the process needs a moment to exit.
func checkShutdown(t *testing.T, what string, args []any, grace time.Duration) {
	t.Helper()
	for i, a := range args {
		v, ok := strings.CutPrefix(fmt.Sprint(a), "--shutdown-timeout=")
		if !ok && fmt.Sprint(a) == "--shutdown-timeout" && i+1 < len(args) {
			v, ok = fmt.Sprint(args[i+1]), true
		}
		if !ok {
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > grace-5*time.Second {
			t.Errorf("%s: --shutdown-timeout %q, want a duration at least 5s below the grace period %v", what, v, grace)
		}
		return
	}
	t.Errorf("%s runs %v without --shutdown-timeout: set it, below the grace period %v", what, args, grace)
}

func TestK8sPodSpec(t *testing.T) {
	objs := loadK8s(t)
	dep := objs["Deployment/pyramid"]
	pod := mapOf(dep, "spec", "template", "spec")
	c := container(t, objs)
	if g, _ := pod["terminationGracePeriodSeconds"].(int); g < 15 {
		t.Errorf("terminationGracePeriodSeconds = %v, want >= 15", pod["terminationGracePeriodSeconds"])
	} else {
		checkShutdown(t, "the Deployment", list(c, "args"), time.Duration(g)*time.Second)
	}
	for _, kind := range []string{"requests", "limits"} {
		for _, res := range []string{"cpu", "memory"} {
			if str(c, "resources", kind, res) == "" {
				t.Errorf("container sets no resources.%s.%s", kind, res)
			}
		}
	}
	if get(pod, "securityContext", "runAsNonRoot") != true {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	if u, ok := get(pod, "securityContext", "runAsUser").(int); !ok || u == 0 {
		t.Error("pod securityContext.runAsUser must be a non-zero UID (the image's user is checked by UID)")
	}
	if get(c, "securityContext", "allowPrivilegeEscalation") != false {
		t.Error("container allows privilege escalation")
	}
	if args := strs(c, "args"); len(args) == 0 || args[0] != "run" {
		t.Errorf("container args %v, want pyramid run", args)
	} else {
		checkFlags(t, "k8s container", args)
	}

	// envFrom and volumes refer to objects that exist.
	env := map[string]string{}
	for _, ef := range list(c, "envFrom") {
		for kind, ref := range map[string]string{"ConfigMap": "configMapRef", "Secret": "secretRef"} {
			name := str(ef, ref, "name")
			if name == "" {
				continue
			}
			o := objs[kind+"/"+name]
			if o == nil {
				t.Errorf("envFrom %s %q does not exist", kind, name)
				continue
			}
			for _, field := range []string{"data", "stringData"} {
				for k, v := range mapOf(o, field) {
					env[k] = fmt.Sprint(v)
				}
			}
		}
	}
	for _, e := range list(c, "env") {
		env[str(e, "name")] = str(e, "value")
	}
	checkRunEnv(t, "k8s", env)

	mounts := map[string]string{} // volume name -> mount path
	for _, m := range list(c, "volumeMounts") {
		mounts[str(m, "name")] = str(m, "mountPath")
	}
	var configMounted bool
	for _, v := range list(pod, "volumes") {
		cm := str(v, "configMap", "name")
		if cm == "" {
			continue
		}
		o := objs["ConfigMap/"+cm]
		if o == nil {
			t.Errorf("volume %s: ConfigMap %q does not exist", str(v, "name"), cm)
			continue
		}
		dir := mounts[str(v, "name")]
		if dir == "" {
			t.Errorf("volume %s is not mounted", str(v, "name"))
			continue
		}
		if p := env["PYRAMID_CONFIG"]; path.Dir(p) == dir {
			if _, ok := mapOf(o, "data")[path.Base(p)]; !ok {
				t.Errorf("PYRAMID_CONFIG=%s but ConfigMap %s has no key %s", p, cm, path.Base(p))
			}
			configMounted = true
		}
	}
	if env["PYRAMID_CONFIG"] != "" && !configMounted {
		t.Errorf("PYRAMID_CONFIG=%s is not a file of a mounted ConfigMap", env["PYRAMID_CONFIG"])
	}
}

// checkRunEnv checks the environment of a `pyramid run` container.
func checkRunEnv(t testing.TB, where string, env map[string]string) {
	t.Helper()
	for k := range env {
		if strings.HasPrefix(k, "PYRAMID_") && !knownEnv[k] {
			t.Errorf("%s: %s is not a variable pyramid reads", where, k)
		}
	}
	if env["PYRAMID_HTTP"] != fmt.Sprintf("0.0.0.0:%d", httpPort) {
		t.Errorf("%s: PYRAMID_HTTP=%q; in a container it must be 0.0.0.0:%d", where, env["PYRAMID_HTTP"], httpPort)
	}
	if env["PYRAMID_BROKERS"] == "" {
		t.Errorf("%s: PYRAMID_BROKERS is not set", where)
	}
	if env["PYRAMID_CLICKHOUSE_DSN"] == "" && env["PYRAMID_SINK_DIR"] == "" {
		t.Errorf("%s: neither PYRAMID_CLICKHOUSE_DSN nor PYRAMID_SINK_DIR is set", where)
	}
	if dsn := env["PYRAMID_CLICKHOUSE_DSN"]; dsn != "" && !strings.HasPrefix(dsn, "clickhouse://") {
		t.Errorf("%s: PYRAMID_CLICKHOUSE_DSN %q is not a clickhouse:// DSN", where, dsn)
	}
	topics := strings.Split(env["PYRAMID_TOPICS"], ",")
	sort.Strings(topics)
	want := append([]string{}, inputTopics...)
	sort.Strings(want)
	if !reflect.DeepEqual(topics, want) {
		t.Errorf("%s: PYRAMID_TOPICS=%q, want the four input topics %v", where, env["PYRAMID_TOPICS"], inputTopics)
	}
}

// checkFlags checks args = subcommand --flag value ... uses known flags.
func checkFlags(t testing.TB, where string, args []string) {
	t.Helper()
	flags, ok := knownFlags[args[0]]
	if !ok {
		t.Errorf("%s: unknown subcommand %q", where, args[0])
		return
	}
	for _, a := range args[1:] {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		found := false
		for _, f := range flags {
			found = found || f == name
		}
		if !found {
			t.Errorf("%s: pyramid %s has no flag --%s", where, args[0], name)
		}
	}
}

var envToken = regexp.MustCompile(`\bPYRAMID_[A-Z0-9_]+`)

// TestEnvNamesAreKnown scans the raw text, so a variable in a comment, a
// command line or a Secret counts too.
func TestEnvNamesAreKnown(t *testing.T) {
	files, _ := filepath.Glob("k8s/*.yaml")
	files = append(files, filepath.Join(repo, "docker-compose.yml"), filepath.Join(repo, "Dockerfile"),
		"alertmanager/alertmanager.yml", "prometheus/rules.yml")
	n := 0
	for _, f := range files {
		for _, tok := range envToken.FindAllString(string(read(t, f)), -1) {
			n++
			if !knownEnv[tok] {
				t.Errorf("%s: %s is not a variable pyramid reads", f, tok)
			}
		}
	}
	if n == 0 {
		t.Error("no PYRAMID_* variable found at all")
	}
}

// TestEnvNamesAreRead checks the variables the deployments set against the
// Go sources: each must be named somewhere in non-test code. Until `pyramid
// run` reads its environment (the sources name PYRAMID_BROKERS) only
// knownEnv above stands for it.
func TestEnvNamesAreRead(t *testing.T) {
	inSource := map[string]bool{}
	err := filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "deploy", "testdata", "vendor":
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			for _, tok := range envToken.FindAllString(string(read(t, p)), -1) {
				inSource[tok] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !inSource["PYRAMID_BROKERS"] {
		t.Logf("the sources do not read PYRAMID_BROKERS yet; checked against knownEnv only")
		return
	}
	files, _ := filepath.Glob("k8s/*.yaml")
	files = append(files, filepath.Join(repo, "docker-compose.yml"), filepath.Join(repo, "Dockerfile"))
	for _, f := range files {
		for _, tok := range envToken.FindAllString(string(read(t, f)), -1) {
			if !inSource[tok] {
				t.Errorf("%s sets %s, which no Go source names", f, tok)
			}
		}
	}
}

// ---- config files --------------------------------------------------------------------------

func TestConfigFilesParse(t *testing.T) {
	objs := loadK8s(t)
	cm := objs["ConfigMap/pyramid-config"]
	text, _ := get(cm, "data", "config.yaml").(string)
	if strings.TrimSpace(text) == "" {
		t.Fatal("ConfigMap pyramid-config has no config.yaml")
	}
	if _, err := config.Parse([]byte(text)); err != nil {
		t.Errorf("k8s ConfigMap config.yaml: %v", err)
	}
	// The k8s example spells out every top-level key, as it says.
	var top obj
	if err := yaml.Unmarshal([]byte(text), &top); err != nil {
		t.Fatal(err)
	}
	ct := reflect.TypeOf(config.Config{})
	for i := range ct.NumField() {
		key, _, _ := strings.Cut(ct.Field(i).Tag.Get("yaml"), ",")
		if _, ok := top[key]; !ok {
			t.Errorf("k8s ConfigMap config.yaml does not show key %s", key)
		}
	}

	c, err := config.Parse(read(t, "pyramid/config.yaml"))
	if err != nil {
		t.Fatalf("deploy/pyramid/config.yaml: %v", err)
	}
	// A partial tier block keeps the other defaults of that tier.
	if c.Tiers.Major.Threshold != config.Default().Tiers.Major.Threshold {
		t.Errorf("deploy/pyramid/config.yaml changed the major threshold to %v", c.Tiers.Major.Threshold)
	}
}

// ---- docker compose ------------------------------------------------------------------------

func composeServices(t testing.TB) map[string]obj {
	t.Helper()
	c := yamlDoc(t, filepath.Join(repo, "docker-compose.yml"))
	out := map[string]obj{}
	for name, s := range mapOf(c, "services") {
		m, ok := s.(obj)
		if !ok {
			t.Fatalf("compose service %s is not a mapping", name)
		}
		out[name] = m
	}
	return out
}

// composeEnv returns a service's environment as a map (either form).
func composeEnv(s obj) map[string]string {
	env := map[string]string{}
	switch e := s["environment"].(type) {
	case obj:
		for k, v := range e {
			env[k] = fmt.Sprint(v)
		}
	case []any:
		for _, kv := range e {
			k, v, _ := strings.Cut(fmt.Sprint(kv), "=")
			env[k] = v
		}
	}
	return env
}

// binds returns a service's bind mounts, host path (relative to the repo)
// to container path.
func binds(s obj) map[string]string {
	out := map[string]string{}
	for _, v := range list(s, "volumes") {
		spec, ok := v.(string)
		if !ok {
			continue
		}
		parts := strings.Split(spec, ":")
		if len(parts) >= 2 && (strings.HasPrefix(parts[0], "./") || strings.HasPrefix(parts[0], "../")) {
			out[parts[0]] = parts[1]
		}
	}
	return out
}

func TestCompose(t *testing.T) {
	services := composeServices(t)
	images := map[string]string{
		"kafka": "apache/kafka:", "clickhouse": "clickhouse/clickhouse-server:",
		"prometheus": "prom/prometheus:", "alertmanager": "prom/alertmanager:", "grafana": "grafana/grafana",
	}
	for name, prefix := range images {
		s := services[name]
		if s == nil {
			t.Errorf("compose has no %s service", name)
			continue
		}
		if !strings.HasPrefix(str(s, "image"), prefix) {
			t.Errorf("compose %s image %q, want %s...", name, str(s, "image"), prefix)
		}
	}
	if roles := composeEnv(services["kafka"])["KAFKA_PROCESS_ROLES"]; !strings.Contains(roles, "broker") || !strings.Contains(roles, "controller") {
		t.Errorf("kafka is not a single KRaft node (KAFKA_PROCESS_ROLES=%q)", roles)
	}
	var initCmd strings.Builder
	for _, s := range services {
		for _, a := range strs(s, "command") {
			initCmd.WriteString(a)
		}
	}
	for _, topic := range allTopics {
		if !strings.Contains(initCmd.String(), topic) {
			t.Errorf("no compose service creates topic %s", topic)
		}
	}
	// The internal topics get the record size limits Pyramid would give
	// them itself: one shell command per line once continuations are joined.
	for topic, want := range map[string]int{"pyramid.state": consumer.StateMaxMessageBytes, "pyramid.dlq": consumer.DLQMaxMessageBytes} {
		found := false
		for _, line := range strings.Split(strings.ReplaceAll(initCmd.String(), "\\\n", " "), "\n") {
			if strings.Contains(line, "--topic "+topic+" ") {
				found = true
				if !strings.Contains(line, fmt.Sprintf("--config max.message.bytes=%d", want)) {
					t.Errorf("compose creates %s without --config max.message.bytes=%d: %s", topic, want, strings.TrimSpace(line))
				}
			}
		}
		if !found {
			t.Errorf("compose creates %s in no command of its own", topic)
		}
	}

	// Every service depends on services that exist; every bind mount exists.
	for name, s := range services {
		var deps []string
		switch d := s["depends_on"].(type) {
		case []any:
			for _, x := range d {
				deps = append(deps, fmt.Sprint(x))
			}
		case obj:
			for k := range d {
				deps = append(deps, k)
			}
		}
		for _, d := range deps {
			if services[d] == nil {
				t.Errorf("compose %s depends on %q, which is not a service", name, d)
			}
		}
		for host := range binds(s) {
			if !exists(t, filepath.Join(repo, host)) {
				t.Errorf("compose %s mounts %s, which does not exist", name, host)
			}
		}
	}

	// Pyramid: built from the Dockerfile, `pyramid run`, configured by env.
	py := services["pyramid"]
	if py == nil {
		t.Fatal("compose has no pyramid service")
	}
	if ctx := str(py, "build", "context"); ctx != "." {
		t.Errorf("pyramid build context %q, want .", ctx)
	}
	if df := str(py, "build", "dockerfile"); df != "" && !exists(t, filepath.Join(repo, df)) {
		t.Errorf("pyramid build dockerfile %s does not exist", df)
	}
	cmd := strs(py, "command")
	if len(cmd) == 0 || cmd[0] != "run" {
		t.Errorf("pyramid command %v, want run", cmd)
	}
	env := composeEnv(py)
	checkRunEnv(t, "compose pyramid", env)
	if !strings.Contains(fmt.Sprint(list(py, "ports")), fmt.Sprintf("%d:%d", httpPort, httpPort)) {
		t.Errorf("compose pyramid does not publish %d", httpPort)
	}
	if p := env["PYRAMID_CONFIG"]; p != "" {
		found := false
		for host, target := range binds(py) {
			found = found || (target == p && strings.HasSuffix(host, ".yaml"))
		}
		if !found {
			t.Errorf("compose pyramid PYRAMID_CONFIG=%s is not a mounted file", p)
		}
	}
	if d, err := time.ParseDuration(str(py, "stop_grace_period")); err != nil || d < 15*time.Second {
		t.Errorf("compose pyramid stop_grace_period %q, want >= 15s", str(py, "stop_grace_period"))
	} else {
		checkShutdown(t, "compose's pyramid", list(py, "command"), d)
	}
	if h, _, _ := strings.Cut(env["PYRAMID_BROKERS"], ":"); services[h] == nil {
		t.Errorf("PYRAMID_BROKERS=%q is not a compose service", env["PYRAMID_BROKERS"])
	}

	// Every pyramid image command uses real subcommands and flags.
	for name, s := range services {
		if str(s, "image") != str(py, "image") {
			continue
		}
		if cmd := strs(s, "command"); len(cmd) > 0 {
			checkFlags(t, "compose "+name, cmd)
		}
	}

	// The generator, under a profile.
	gen := services["gen"]
	if gen == nil {
		t.Fatal("compose has no gen service")
	}
	if len(strs(gen, "profiles")) == 0 {
		t.Error("compose gen is not under a profile")
	}
	// Foreign currencies the generator emits need a rate in the config
	// Pyramid reads, or their events are dead-lettered.
	pcfg, err := config.Parse(read(t, "pyramid/config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	gargs := strs(gen, "command")
	for i, a := range gargs {
		if a != "--currencies" || i+1 >= len(gargs) {
			continue
		}
		for _, kv := range strings.Split(gargs[i+1], ",") {
			cur, rate, _ := strings.Cut(kv, "=")
			r, err := strconv.ParseFloat(rate, 64)
			if err != nil || pcfg.FXRates[cur] != r {
				t.Errorf("gen --currencies %s, but deploy/pyramid/config.yaml has fx_rates.%s = %v", kv, cur, pcfg.FXRates[cur])
			}
		}
	}
	gcmd := strings.Join(gargs, " ")
	if !strings.HasPrefix(gcmd, "gen ") || !strings.Contains(gcmd, "--brokers kafka:9092") || !strings.Contains(gcmd, "--rate ") {
		t.Errorf("compose gen command %q, want gen --brokers kafka:9092 --rate ...", gcmd)
	}

	// Prometheus gets its config and the rules next to it, as rule_files
	// expects.
	pb := binds(services["prometheus"])
	cfg := pb["./deploy/prometheus/prometheus.yml"]
	if cfg == "" {
		t.Fatal("compose prometheus does not mount deploy/prometheus/prometheus.yml")
	}
	if !strings.Contains(strings.Join(strs(services["prometheus"], "command"), " "), "--config.file="+cfg) {
		t.Errorf("compose prometheus does not use --config.file=%s", cfg)
	}
	for _, rf := range strs(yamlDoc(t, "prometheus/prometheus.yml"), "rule_files") {
		want := path.Join(path.Dir(cfg), rf)
		found := false
		for host, target := range binds(services["prometheus"]) {
			found = found || (target == want && exists(t, filepath.Join(repo, host)))
		}
		if !found {
			t.Errorf("compose prometheus: rule file %s is not mounted at %s", rf, want)
		}
	}
	ab := binds(services["alertmanager"])
	if ab["./deploy/alertmanager/alertmanager.yml"] == "" {
		t.Error("compose alertmanager does not mount deploy/alertmanager/alertmanager.yml")
	}

	// Grafana gets the provisioning, and the dashboards where the provider
	// looks for them.
	gb := binds(services["grafana"])
	if gb["./deploy/grafana/provisioning"] != "/etc/grafana/provisioning" {
		t.Errorf("compose grafana mounts provisioning at %q, want /etc/grafana/provisioning", gb["./deploy/grafana/provisioning"])
	}
	prov := yamlDoc(t, "grafana/provisioning/dashboards/dashboards.yml")
	for _, p := range list(prov, "providers") {
		dir := str(p, "options", "path")
		found := false
		for host, target := range gb {
			if target == dir {
				js, _ := filepath.Glob(filepath.Join(repo, host, "*.json"))
				found = len(js) > 0
			}
		}
		if !found {
			t.Errorf("grafana dashboard provider path %s is not a mounted directory of dashboards", dir)
		}
	}
	if !strings.Contains(composeEnv(services["grafana"])["GF_INSTALL_PLUGINS"], "grafana-clickhouse-datasource") {
		t.Error("compose grafana does not install grafana-clickhouse-datasource")
	}
	// Variables the datasource file expands must be in Grafana's environment.
	genv := composeEnv(services["grafana"])
	var dsText strings.Builder
	for _, line := range strings.Split(string(read(t, "grafana/provisioning/datasources/datasources.yml")), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			dsText.WriteString(line + "\n")
		}
	}
	for _, m := range regexp.MustCompile(`\$\{?([A-Z_][A-Z0-9_]*)\}?`).FindAllStringSubmatch(dsText.String(), -1) {
		if _, ok := genv[m[1]]; !ok {
			t.Errorf("datasources.yml uses $%s, which compose grafana does not set", m[1])
		}
	}
	// Grafana reaches ClickHouse and Prometheus by their service names.
	for _, d := range list(yamlDoc(t, "grafana/provisioning/datasources/datasources.yml"), "datasources") {
		host := str(d, "jsonData", "host")
		if u := str(d, "url"); u != "" {
			host = strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
			host, _, _ = strings.Cut(host, ":")
		}
		if services[host] == nil {
			t.Errorf("datasource %s points at %q, not a compose service", str(d, "name"), host)
		}
	}
}

// ---- Dockerfile -------------------------------------------------------------------------------

func TestDockerfile(t *testing.T) {
	var stages [][]string // instructions per stage, continuation lines joined
	var cur strings.Builder
	for _, line := range strings.Split(string(read(t, filepath.Join(repo, "Dockerfile"))), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		ins := cur.String()
		cur.Reset()
		if strings.HasPrefix(strings.ToUpper(ins), "FROM ") {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], ins)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a final one", len(stages))
	}
	build := strings.Join(stages[0], "\n")
	if !regexp.MustCompile(`(?i)^FROM golang:\S+ AS \w+`).MatchString(stages[0][0]) {
		t.Errorf("first stage %q is not a golang build stage", stages[0][0])
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/pyramid"} {
		if !strings.Contains(build, want) {
			t.Errorf("build stage does not contain %s", want)
		}
	}
	final := stages[len(stages)-1]
	base := strings.Fields(final[0])[1]
	distroless := strings.HasPrefix(base, "gcr.io/distroless/static") && strings.HasSuffix(base, ":nonroot")
	if !distroless && base != "scratch" {
		t.Errorf("final image %s, want distroless/static:nonroot or scratch", base)
	}
	var user, expose string
	var copied bool
	for _, ins := range final {
		f := strings.Fields(ins)
		switch strings.ToUpper(f[0]) {
		case "USER":
			user = f[1]
		case "EXPOSE":
			expose = strings.Join(f[1:], " ")
		case "COPY":
			copied = copied || strings.Contains(ins, "--from=")
		}
	}
	u, _, _ := strings.Cut(user, ":")
	if u == "" && !distroless || u == "root" || u == "0" {
		t.Errorf("final stage USER %q, want a non-root user", user)
	}
	if expose != strconv.Itoa(httpPort) {
		t.Errorf("EXPOSE %q, want %d", expose, httpPort)
	}
	if !copied {
		t.Error("final stage copies nothing from the build stage")
	}
	// The UID the k8s pod runs as is the image's user.
	if n, err := strconv.Atoi(u); err == nil {
		objs := loadK8s(t)
		if got, _ := get(objs["Deployment/pyramid"], "spec", "template", "spec", "securityContext", "runAsUser").(int); got != n {
			t.Errorf("k8s runAsUser %d, Dockerfile USER %d", got, n)
		}
	}
	// The build context must keep what the build stage copies.
	for _, line := range strings.Split(string(read(t, filepath.Join(repo, ".dockerignore"))), "\n") {
		line = strings.TrimSpace(line)
		for _, keep := range []string{"go.mod", "go.sum", "cmd", "*.go", "**/*.go"} {
			if line == keep {
				t.Errorf(".dockerignore excludes %s, which the build needs", keep)
			}
		}
	}
}

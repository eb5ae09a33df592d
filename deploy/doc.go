// Package deploy holds no code: it is the home of the deployment files
// (Prometheus rules and their unit tests, Alertmanager routing, Grafana
// provisioning and dashboard, Kubernetes manifests, the compose stack's
// Pyramid config) and of the tests that check them against the code. There
// is no container engine in CI, so deploy_test.go parses every file and
// checks the cross-references a typo would break: metric names against
// metrics.Names, PYRAMID_* variables against what `pyramid run` reads,
// ports, probes, selectors, mounted files and the config file against
// config.Parse. promtool itself runs from scripts/test.sh.
package deploy

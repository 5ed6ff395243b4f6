// Wrapper module pinning the Grafana Foundation SDK for the dashboard schema check; built by
// ../../tools/install-dashboard-validate.sh.
module argomap.test/dashboard/validate

go 1.26.0

require github.com/grafana/grafana-foundation-sdk/go v0.0.22

// Command dashboard-validate checks Grafana dashboard JSON files against the dashboard schema
// of the Grafana Foundation SDK pinned in go.mod (generated from Grafana's own schemas): strict
// decoding (unknown fields, wrong types and missing required fields fail, panel options and
// Prometheus queries by their plugin's schema), the schema's validation constraints, and a
// schemaVersion equal to the one this schema is for.
//
// Usage: dashboard-validate FILE...   (exit 0 when every file is valid; errors on stderr)
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: dashboard-validate FILE...")
		os.Exit(2)
	}
	// Without the plugin variants, panel options and queries are decoded loosely.
	plugins.RegisterDefaultPlugins()
	want := dashboard.NewDashboard().SchemaVersion
	failed := false
	for _, path := range os.Args[1:] {
		if err := validate(path, want); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			failed = true
			continue
		}
		fmt.Printf("%s: valid for dashboard schemaVersion %d\n", path, want)
	}
	if failed {
		os.Exit(1)
	}
}

func validate(path string, want uint16) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var d dashboard.Dashboard
	if err := reported(d.UnmarshalJSONStrict(raw)); err != nil {
		return fmt.Errorf("does not match the dashboard schema: %w", err)
	}
	if err := reported(d.Validate()); err != nil {
		return fmt.Errorf("breaks a constraint of the dashboard schema: %w", err)
	}
	if d.SchemaVersion != want {
		return fmt.Errorf("declares schemaVersion %d, but this schema is version %d", d.SchemaVersion, want)
	}
	if d.Title == nil || *d.Title == "" {
		return fmt.Errorf("has no title")
	}
	return nil
}

// reported is err unless it is an empty cog.BuildErrors: the SDK returns its (possibly empty) error
// list as an error interface, which is then never nil.
func reported(err error) error {
	var list cog.BuildErrors
	if errors.As(err, &list) && len(list) == 0 {
		return nil
	}
	return err
}

// Command check loads Compose files the way `docker compose` does (compose-go, the Compose
// specification's reference library: JSON-schema validation, anchors and merge keys, variable
// interpolation, profiles) and prints each as its normalized model in JSON, for the tests of
// crates/streampulse/tests/deploy_compose.rs to check against the rest of the repository. No
// engine is needed or contacted.
//
//	go run . ../../../docker-compose.yml ...
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: check COMPOSE_FILE...")
		os.Exit(2)
	}
	out := map[string]any{}
	for _, file := range os.Args[1:] {
		abs, err := filepath.Abs(file)
		if err != nil {
			fail(file, err)
		}
		opts, err := cli.NewProjectOptions([]string{abs},
			cli.WithWorkingDirectory(filepath.Dir(abs)),
			// Every profile: the optional services are checked too.
			cli.WithProfiles([]string{"*"}),
			cli.WithOsEnv,
		)
		if err != nil {
			fail(file, err)
		}
		project, err := opts.LoadProject(context.Background())
		if err != nil {
			fail(file, err)
		}
		out[filepath.Base(file)] = project
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		fail("stdout", err)
	}
}

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
	os.Exit(1)
}

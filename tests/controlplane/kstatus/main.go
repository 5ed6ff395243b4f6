// kstatus prints what sigs.k8s.io/cli-utils/pkg/kstatus/status (the rules Flux's `wait: true`
// and kpt apply by) computes for the object on stdin: one JSON line {"status", "message"}.
// Test infrastructure for argomap's cluster suite; built by ../build.sh.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	// The apimachinery decoder, as a client's: integers stay int64 (kstatus reads
	// generations as such).
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(data); err != nil {
		fail("stdin is not a Kubernetes object: %v", err)
	}
	res, err := status.Compute(obj)
	if err != nil {
		fail("computing the status: %v", err)
	}
	out, err := json.Marshal(map[string]string{"status": res.Status.String(), "message": res.Message})
	if err != nil {
		fail("encoding the result: %v", err)
	}
	fmt.Println(string(out))
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "kstatus: "+format+"\n", args...)
	os.Exit(1)
}

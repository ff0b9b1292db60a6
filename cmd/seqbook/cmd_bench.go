package main

import (
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/seqbook/seqbook/internal/localnet"
)

// benchmark is one `seqbook bench <name>` target. Each lives in its own
// cmd_bench_*.go file and registers itself with registerBench.
type benchmark struct {
	name    string
	summary string
	run     func(args []string) int
}

var benchmarks = map[string]benchmark{}

func registerBench(b benchmark) {
	if _, dup := benchmarks[b.name]; dup {
		panic("seqbook: benchmark registered twice: " + b.name)
	}
	benchmarks[b.name] = b
}

// defaultBench runs when `seqbook bench` gets no target name (or only
// flags): the end-to-end benchmark.
const defaultBench = "e2e"

// benchUsage lists the targets on w (stdout for --help, stderr after a
// mistake).
func benchUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: seqbook bench [target] [flags]   (seqbook bench <target> --help)")
	fmt.Fprintln(w, "\nTargets:")
	names := make([]string, 0, len(benchmarks))
	for n := range benchmarks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		mark := ""
		if n == defaultBench {
			mark = " (default)"
		}
		fmt.Fprintf(w, "  %-10s %s%s\n", n, benchmarks[n].summary, mark)
	}
}

func runBench(args []string) int {
	name := defaultBench
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		benchUsage(os.Stdout)
		return 0
	}
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	b, ok := benchmarks[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "seqbook bench: unknown target %q\n\n", name)
		benchUsage(os.Stderr)
		return 2
	}
	return b.run(args)
}

func init() {
	register(command{name: "bench", summary: "measure throughput and latency (matcher, sequencer, proofs, e2e)", run: runBench})
}

// networkPIDs lists a local network's running processes by component kind
// (whose CPU times the benchmarks count).
func networkPIDs(n *localnet.Network) map[string][]int {
	pids := map[string][]int{}
	for _, comp := range n.Components {
		if pid := n.PID(comp.ID); pid != 0 {
			pids[comp.Kind] = append(pids[comp.Kind], pid)
		}
	}
	return pids
}

// finishBench ends a benchmark run: its error (a component that died
// makes one), else res written to jsonOut when given. keep, when not nil,
// is set on failure so the network's logs are kept.
func finishBench(res any, err error, deaths int64, keep *bool, jsonOut string) int {
	if err == nil && deaths > 0 {
		err = fmt.Errorf("%d component(s) died during the benchmark (reports above)", deaths)
	}
	if err != nil {
		if keep != nil {
			*keep = true // the logs say why
		}
		return fail("bench", err)
	}
	if jsonOut != "" {
		if err := writeJSONFile(jsonOut, res); err != nil {
			return fail("bench", err)
		}
	}
	return 0
}

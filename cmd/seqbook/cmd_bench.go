package main

import (
	"fmt"
	"os"
	"sort"
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

func benchUsage() {
	fmt.Fprintln(os.Stderr, "Usage: seqbook bench [target] [flags]   (seqbook bench <target> --help)")
	fmt.Fprintln(os.Stderr, "\nTargets:")
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
		fmt.Fprintf(os.Stderr, "  %-10s %s%s\n", n, benchmarks[n].summary, mark)
	}
}

func runBench(args []string) int {
	name := defaultBench
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		benchUsage()
		return 0
	}
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	b, ok := benchmarks[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "seqbook bench: unknown target %q\n\n", name)
		benchUsage()
		return 2
	}
	return b.run(args)
}

func init() {
	register(command{name: "bench", summary: "measure throughput and latency (matcher, sequencer, proofs, e2e)", run: runBench})
}

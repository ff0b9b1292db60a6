// Command seqbook is the one binary of the system: sequencer nodes,
// replicas, the aggregator, the local network, the client commands and the
// tools (replay, bench) are its subcommands.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/seqbook/seqbook/internal/version"
)

// command is one subcommand. Each lives in its own cmd_*.go file and
// registers itself in init, so adding one never touches this file.
type command struct {
	name    string
	summary string
	// run gets the arguments after the subcommand name and returns the
	// process exit code.
	run func(args []string) int
}

var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("seqbook: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

// usage lists the commands on w: stdout when asked for (--help), stderr
// after a mistake.
func usage(w io.Writer) {
	fmt.Fprintln(w, "seqbook: a verifiable, replicated spot orderbook on a BFT sequencer")
	fmt.Fprintln(w, "\nUsage: seqbook <command> [flags]   (seqbook <command> --help for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-11s %s\n", n, commands[n].summary)
	}
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		if len(os.Args) < 2 {
			usage(os.Stderr)
			os.Exit(2)
		}
		usage(os.Stdout)
		return
	}
	if os.Args[1] == "--version" || os.Args[1] == "-version" || os.Args[1] == "version" {
		fmt.Println(version.String("seqbook"))
		return
	}
	c, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "seqbook: unknown command %q\n\n", os.Args[1])
		usage(os.Stderr)
		os.Exit(2)
	}
	os.Exit(runProfiled(c))
}

// fail prints an error in the one format every subcommand uses and returns
// exit code 1.
func fail(name string, err error) int {
	fmt.Fprintf(os.Stderr, "seqbook %s: %s\n", name, strings.TrimSpace(err.Error()))
	return 1
}

package main

import (
	"flag"
	"fmt"

	"github.com/seqbook/seqbook/internal/cli"
)

// setUsage makes fs's --help text the usage line, a blank line, the
// description (one line per entry), a blank line and the flags: the shape
// every seqbook command's help has.
func setUsage(fs *flag.FlagSet, usage string, about ...string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, usage)
		fmt.Fprintln(w)
		for _, line := range about {
			fmt.Fprintln(w, line)
		}
		fmt.Fprintln(w, "\nFlags:")
		fs.PrintDefaults()
	}
}

// parseOrExit parses args into fs; done reports that the command must end
// with code: 0 after --help (printed to stdout), 2 after a flag error (the
// flag package has already said on stderr what was wrong). Checking positional arguments is left to
// the caller.
func parseOrExit(fs *flag.FlagSet, args []string) (code int, done bool) {
	return cli.Parse(fs, args)
}

// parseFlags is parseOrExit for commands that take no positional
// arguments; ok reports that the command may run, otherwise it must end
// with code.
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if code, done := parseOrExit(fs, args); done {
		return code, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %q\n", fs.Args())
		return 2, false
	}
	return 0, true
}

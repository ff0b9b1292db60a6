package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/seqbook/seqbook/internal/cli"
)

// TestEveryHelpGoesToStdout runs `seqbook <command> --help` for every
// command: exit 0, the help on stdout, nothing on stderr, and flag
// placeholders that are words (FILE, string…), not the text of a
// backquoted command in the flag's description.
func TestEveryHelpGoesToStdout(t *testing.T) {
	// A placeholder the flag package took from backquotes in a usage text
	// reads like "-key seqbook keys trader".
	badPlaceholder := regexp.MustCompile(`(?m)^\s+-[a-z-]+ [a-z]+ [a-z]`)
	for name, c := range commands {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			outF, _ := os.Create(filepath.Join(dir, "out"))
			errF, _ := os.Create(filepath.Join(dir, "err"))
			oldOut, oldErr, oldHelp := os.Stdout, os.Stderr, cli.HelpOut
			os.Stdout, os.Stderr, cli.HelpOut = outF, errF, outF
			code := c.run([]string{"--help"})
			os.Stdout, os.Stderr, cli.HelpOut = oldOut, oldErr, oldHelp
			outF.Close()
			errF.Close()
			out, _ := os.ReadFile(outF.Name())
			errOut, _ := os.ReadFile(errF.Name())
			if code != 0 || len(errOut) != 0 || !strings.Contains(string(out), "seqbook") {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			if m := badPlaceholder.FindString(string(out)); m != "" {
				t.Errorf("placeholder from a backquoted text: %q", m)
			}
		})
	}
}

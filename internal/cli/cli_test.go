package cli

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

func TestParseHelpToHelpOutMistakesToOutput(t *testing.T) {
	newFS := func(errOut *bytes.Buffer) *flag.FlagSet {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(errOut)
		fs.String("key", "", "key `FILE`")
		return fs
	}
	var help, errOut bytes.Buffer
	if code, done := ParseTo(newFS(&errOut), []string{"--help"}, &help); code != 0 || !done {
		t.Fatalf("--help: %d %v", code, done)
	}
	if !strings.Contains(help.String(), "-key FILE") || errOut.Len() != 0 {
		t.Fatalf("help %q, stderr %q", help.String(), errOut.String())
	}
	help.Reset()
	if code, done := ParseTo(newFS(&errOut), []string{"--nope"}, &help); code != 2 || !done {
		t.Fatalf("bad flag: %d %v", code, done)
	}
	if help.Len() != 0 || !strings.Contains(errOut.String(), "flag provided but not defined: -nope") {
		t.Fatalf("help %q, stderr %q", help.String(), errOut.String())
	}
	errOut.Reset()
	if code, done := ParseTo(newFS(&errOut), []string{"--key", "k"}, &help); code != 0 || done || errOut.Len() != 0 {
		t.Fatalf("good flags: %d %v %q", code, done, errOut.String())
	}
}

func TestNewLoggerRefusesUnknownValues(t *testing.T) {
	if _, err := NewLogger(&bytes.Buffer{}, "xml", "info"); err == nil || !strings.Contains(err.Error(), "want text or json") {
		t.Fatalf("format: %v", err)
	}
	if _, err := NewLogger(&bytes.Buffer{}, "json", "loud"); err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Fatalf("level: %v", err)
	}
	var buf bytes.Buffer
	l, err := NewLogger(&buf, "json", "warn")
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hidden")
	l.Warn("shown", KeyIndex, 3)
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), `"index":3`) {
		t.Fatalf("%s", buf.String())
	}
}

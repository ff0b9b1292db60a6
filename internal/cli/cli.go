// Package cli is what every seqbook binary (the seqbook command, the
// tutorial steps, the scripts) shares on its command line: parsing flags
// with --help on stdout and mistakes on stderr, and the logging flags
// (--log-format, --log-level) that give every process the same slog output.
package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/seqbook/seqbook/internal/version"
)

// HelpOut is where --help text goes: stdout, so `cmd --help | less` works
// and a help request is not mistaken for an error.
var HelpOut io.Writer = os.Stdout

// Parse parses args into fs. done reports that the program must end with
// code: 0 after --help (the usage printed to HelpOut), 2 after a flag
// mistake (the flag package's message and the usage printed to fs's
// output, stderr unless set otherwise).
func Parse(fs *flag.FlagSet, args []string) (code int, done bool) {
	return ParseTo(fs, args, HelpOut)
}

// ParseTo is Parse with the help text written to helpOut (a command that
// takes its stdout as a parameter passes it).
func ParseTo(fs *flag.FlagSet, args []string, helpOut io.Writer) (code int, done bool) {
	// --version on every command and binary (DESIGN §8).
	if fs.Lookup("version") == nil {
		fs.Bool("version", false, "print the version and exit")
	}
	defer func() {
		if f := fs.Lookup("version"); !done && f != nil && f.Value.String() == "true" {
			fmt.Fprintln(helpOut, version.String(fs.Name()))
			code, done = 0, true
		}
	}()
	errOut := fs.Output()
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	fs.SetOutput(errOut)
	if err == nil {
		return 0, false
	}
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(helpOut)
		fs.Usage()
		fs.SetOutput(errOut)
		return 0, true
	}
	errOut.Write(buf.Bytes())
	return 2, true
}

// LogFlags are --log-format and --log-level.
type LogFlags struct {
	Format *string
	Level  *string
}

// AddLogFlags registers --log-format and --log-level on fs.
func AddLogFlags(fs *flag.FlagSet) *LogFlags {
	return &LogFlags{
		Format: fs.String("log-format", "text", "log line format: text or json"),
		Level:  fs.String("log-level", "info", "least severe level logged: debug, info, warn or error"),
	}
}

// Args returns the flags that give a child process the same logging.
func (lf *LogFlags) Args() []string {
	return []string{"--log-format", *lf.Format, "--log-level", *lf.Level}
}

// Logger builds the logger the flags ask for, writing to w.
func (lf *LogFlags) Logger(w io.Writer) (*slog.Logger, error) {
	return NewLogger(w, *lf.Format, *lf.Level)
}

// NewLogger builds a slog logger writing format ("text" or "json") lines
// of at least level ("debug", "info", "warn", "error") to w.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// The keys every component logs the same things under, so one query finds
// an order or an index in the logs of every process.
const (
	KeyApp     = "app"      // sequencer app name
	KeyIndex   = "index"    // batch index in an app's sequence
	KeyView    = "view"     // sequencer view
	KeyOrderID = "order_id" // an order's id (0x + 64 hex)
	KeyTrader  = "trader"   // a trader's address (0x…, checksummed)
)

// SetDefault builds the logger the flags ask for, writing to w, and makes
// it slog's default (for programs that log through the slog functions).
func (lf *LogFlags) SetDefault(w io.Writer) (*slog.Logger, error) {
	l, err := lf.Logger(w)
	if err != nil {
		return nil, err
	}
	slog.SetDefault(l)
	return l, nil
}

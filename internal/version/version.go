// Package version names the build every binary reports with --version
// (DESIGN §8).
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release name; `go build -ldflags "-X
// github.com/seqbook/seqbook/internal/version.Version=v1.2.3"` sets it.
// Without it the module version (or "devel") is reported.
var Version = ""

// String is "<binary> <version> (<vcs revision>[, modified]) <go version>".
func String(binary string) string {
	v, rev := Version, ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		var dirty bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" && dirty {
			rev += ", modified"
		}
	}
	if v == "" {
		v = "devel"
	}
	if rev != "" {
		return fmt.Sprintf("%s %s (%s) %s", binary, v, rev, runtime.Version())
	}
	return fmt.Sprintf("%s %s %s", binary, v, runtime.Version())
}

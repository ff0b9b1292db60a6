package integration_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqbook/seqbook/sequencer/node/testnet"
)

// TestCommandRefusesBadStart: `seqbook sequencer` exits non-zero with a
// message naming the problem instead of running with a wrong key, an
// unknown id, a missing flag, a bad log level or a data folder it cannot
// open (that one used to end in a SIGSEGV on a nil store).
func TestCommandRefusesBadStart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the seqbook binary; skipped under -short")
	}
	tn, err := testnet.New(4)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file, err := tn.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	badKey := filepath.Join(dir, "bad.key")
	os.WriteFile(badKey, []byte("0xnothex\n"), 0o600)
	data := func(name string) string { return filepath.Join(dir, "data", name) }
	notADir := filepath.Join(dir, "not-a-folder")
	os.WriteFile(notADir, []byte("x"), 0o600)

	run := func(args ...string) (int, string) {
		cmd := exec.Command(seqbookBin, append([]string{"sequencer"}, args...)...)
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"another node's key", []string{"--cluster", file, "--id", "node1", "--key", tn.KeyPath(dir, 1), "--data", data("a")}, "not the key of node1"},
		{"unknown id", []string{"--cluster", file, "--id", "node7", "--key", tn.KeyPath(dir, 0), "--data", data("b")}, `"node7" is not a node`},
		{"unreadable key", []string{"--cluster", file, "--id", "node1", "--key", badKey, "--data", data("c")}, "not valid hex"},
		{"missing flags", []string{"--cluster", file, "--id", "node1"}, "required"},
		{"missing cluster file", []string{"--cluster", filepath.Join(dir, "nope.json"), "--id", "node1", "--key", tn.KeyPath(dir, 0), "--data", data("d")}, "cluster file"},
		{"bad log level", []string{"--cluster", file, "--id", "node1", "--key", tn.KeyPath(dir, 0), "--data", data("e"), "--log-level", "loud"}, "--log-level"},
		{"data folder is a file", []string{"--cluster", file, "--id", "node1", "--key", tn.KeyPath(dir, 0), "--data", notADir}, notADir},
	}
	for _, tc := range cases {
		code, out := run(tc.args...)
		if code == 0 || !strings.Contains(out, tc.want) || strings.Contains(out, "SIGSEGV") || strings.Contains(out, "goroutine ") {
			t.Errorf("%s: exit %d, output %q; want non-zero and %q", tc.name, code, out, tc.want)
		}
	}
	if code, out := run("--help"); code != 0 || !strings.Contains(out, "--cluster") {
		t.Errorf("--help: exit %d %q", code, out)
	}
}

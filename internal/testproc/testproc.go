// Package testproc is what the integration tests that run real seqbook
// processes share: building the binary once per test binary, starting a
// local network of processes with its logs shown on failure, and waiting
// on a condition with a deadline (never on wall-clock time alone).
package testproc

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seqbook/seqbook/internal/localnet"
)

// SeqbookPackage is the import path of the seqbook command.
const SeqbookPackage = "github.com/seqbook/seqbook/cmd/seqbook"

// Main is a TestMain body for packages whose tests run the seqbook binary:
// unless -short, it builds the binary into a temporary folder (named after
// tempPrefix) and stores its path in *bin before the tests run, then
// removes the folder. Under -short *bin stays "" and the tests are
// expected to skip. It returns the exit code for os.Exit.
func Main(m *testing.M, tempPrefix string, bin *string) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", tempPrefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*bin = filepath.Join(dir, "seqbook")
	build := exec.Command("go", "build", "-o", *bin, SeqbookPackage)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building seqbook:", err)
		return 1
	}
	return m.Run()
}

// PollInterval is how often WaitFor checks its condition: the interval of
// a poll, not a protocol wait.
const PollInterval = 50 * time.Millisecond

// WaitFor polls cond until it holds, failing the test when deadline has
// passed; cond returns a description of the state for the failure message.
func WaitFor(t testing.TB, what string, deadline time.Duration, cond func() (bool, string)) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if !time.Now().Before(end) {
			t.Fatalf("%s: not within %s; last: %s", what, deadline, state)
		}
		time.Sleep(PollInterval)
	}
}

// StartNetwork starts a local network of real processes (localnet's test
// layout on free ports, running bin) within two minutes, after configure
// (if not nil) has adjusted its config. The network is stopped when the
// test ends; if the test failed, the last tailLines lines of every
// component's log are logged.
func StartNetwork(t *testing.T, bin string, tailLines int, configure func(*localnet.Config)) *localnet.Network {
	t.Helper()
	cfg, err := localnet.TestConfig(t.TempDir(), bin)
	if err != nil {
		t.Fatal(err)
	}
	if configure != nil {
		configure(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := localnet.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Stop()
		if t.Failed() {
			for _, c := range n.Components {
				t.Logf("---- %s log (tail):\n%s", c.ID, localnet.LogTail(c.LogPath, tailLines))
			}
		}
	})
	return n
}

// SyncBuffer collects a process's output; it is safe for concurrent
// writes (os/exec copies stdout and stderr from two goroutines) and reads.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write implements io.Writer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seqbook/seqbook/internal/testproc"
)

// binary is the seqbook executable built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	if testingShort() {
		os.Exit(m.Run())
	}
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binary = filepath.Join(root, "tmp", "seqbook")
	build := exec.Command("go", "build", "-o", binary, "./cmd/seqbook")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building seqbook:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// testingShort reads -short before m.Run parses flags (TestMain must know
// whether to build the binary at all).
func testingShort() bool {
	for _, a := range os.Args[1:] {
		if a == "-test.short" || a == "-test.short=true" || a == "--test.short" {
			return true
		}
	}
	return false
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
		dir = parent
	}
}

// run runs seqbook with args until it exits or the deadline passes, and
// returns its combined output and exit code (-1 if killed at the deadline).
func run(t *testing.T, deadline time.Duration, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out testproc.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// The command's own children die with it (localnet sets a parent-death
	// signal), so killing it at the deadline leaves nothing behind.
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok && ctx.Err() == nil {
			code = ee.ExitCode()
		}
	}
	return out.String(), code
}

// The demo of the README: a real network, the tutorial trade through two
// replicas, a balance proof verified offline.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole network of processes")
	}
	out, code := run(t, 3*time.Minute, "demo", "--timeout", "150s")
	if code != 0 {
		t.Fatalf("seqbook demo exited %d:\n%s", code, out)
	}
	for _, want := range []string{
		"is filled",
		"fill: 1 ETH at 200 USDT",
		"reports user1's buy as filled",
		"proof verified: balance 800 USDT of 0xc66F8Fba940064B5bA8d437d6fF829E60134230E",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

// seqbook localnet runs until interrupted, then stops every component.
func TestLocalnetStopsOnInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole network of processes")
	}
	dir := t.TempDir()
	cmd := exec.Command(binary, "localnet", "--dir", dir,
		"--node-port", "0", "--quic-port", "0", "--replica-port", "0", "--aggregator-port", "0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errOut testproc.SyncBuffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var seen []string
	timeout := time.After(2 * time.Minute)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("localnet ended before it ran:\n%s\n%s", strings.Join(seen, "\n"), errOut.String())
			}
			seen = append(seen, l)
			if strings.Contains(l, "localnet: running") {
				break wait
			}
		case <-timeout:
			t.Fatalf("localnet not running after 2 minutes:\n%s\n%s", strings.Join(seen, "\n"), errOut.String())
		}
	}
	text := strings.Join(seen, "\n")
	for _, want := range []string{"node1", "node4", "replica3", "aggregator", filepath.Join(dir, "cluster.json")} {
		if !strings.Contains(text, want) {
			t.Errorf("localnet output lacks %q:\n%s", want, text)
		}
	}
	// Every component is a child with its own process group.
	children := childPIDs(t, text)
	if len(children) != 8 {
		t.Fatalf("want 8 component pids in the table, got %v:\n%s", children, text)
	}
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() {
		for range lines {
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("localnet exited with %v after SIGINT:\n%s", err, errOut.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("localnet did not stop within a minute of SIGINT")
	}
	for _, pid := range children {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("component pid %d still alive after localnet stopped", pid)
		}
	}
}

// childPIDs reads the PID column of the endpoints table.
func childPIDs(t *testing.T, text string) []int {
	var pids []int
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) < 5 || !strings.HasPrefix(f[1], "http://") {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(f[3], &pid); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// A short chaos run: leader, follower and replica crashes under load; the
// command checks agreement, exactly-once application and the finality bound.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole network of processes and crashes them")
	}
	summary := filepath.Join(t.TempDir(), "chaos.json")
	out, code := run(t, 4*time.Minute, "chaos", "--duration", "30s", "--down", "3s", "--rate", "30", "--json", summary)
	if code != 0 {
		t.Fatalf("seqbook chaos exited %d:\n%s", code, out)
	}
	b, err := os.ReadFile(summary)
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Sent, Accepted, Applied int
		Kills                   []string
		OK                      bool
		MaxFinalityGapMs        int64 `json:"max_finality_gap_ms"`
		FinalityBoundMs         int64 `json:"finality_bound_ms"`
	}
	if err := json.NewDecoder(io.LimitReader(bytes.NewReader(b), 1<<20)).Decode(&s); err != nil {
		t.Fatal(err)
	}
	if !s.OK || len(s.Kills) != 3 || s.Accepted == 0 || s.Applied != s.Accepted || s.MaxFinalityGapMs > s.FinalityBoundMs {
		t.Fatalf("chaos summary %+v:\n%s", s, out)
	}
}

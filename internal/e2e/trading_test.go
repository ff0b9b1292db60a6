package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seqbook/seqbook/internal/testproc"
)

// The tutorial's two funded accounts (DESIGN §7): public test keys.
const (
	tutorialUser1Key = "0x4b7f4de058ab4d3629f438c1728ac77bea7f4ab0099218be77242f8ba099cca7" // 1000 USDT
	tutorialUser1    = "0xc66F8Fba940064B5bA8d437d6fF829E60134230E"
	tutorialUser2Key = "0x28a3947aa36917ca22f56765c67bedc2fdbbd2daf73f8a2cdb1c0dd252cefc3c" // 5 ETH
)

// The trading API on a real network of processes, driven by the CLI: a
// batch from a file, a fill-or-kill order, history read from another
// replica than the one that took the orders, and a cancel-all.
func TestTradingAPIOnLocalnet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole network of processes")
	}
	replicas := startLocalnet(t)
	if len(replicas) != 3 {
		t.Fatalf("replicas %v", replicas)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "orders.jsonl")
	orders := `{"market":"ETH/USDT","side":"sell","type":"post_only","quantity":"1","price":"2100"}
{"market":"ETH/USDT","side":"sell","quantity":"1","price":"200"}
`
	if err := os.WriteFile(file, []byte(orders), 0o644); err != nil {
		t.Fatal(err)
	}
	cli := func(key string, args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(binary, args...)
		cmd.Env = append(os.Environ(), "SEQBOOK_KEY="+key)
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
			out = append(out, ee.Stderr...)
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	if out, code := cli(tutorialUser2Key, "order", "--replica", replicas[0], "--file", file, "--wait", "--timeout", "60s"); code != 0 ||
		strings.Count(out, `"status": "open"`) != 2 {
		t.Fatalf("order --file: exit %d\n%s", code, out)
	}
	out, code := cli(tutorialUser1Key, "order", "--replica", replicas[0], "--type", "fok", "--market", "ETH/USDT",
		"--side", "buy", "--quantity", "1", "--price", "200", "--wait", "--timeout", "60s")
	if code != 0 || !strings.Contains(out, `"status": "filled"`) {
		t.Fatalf("order --type fok: exit %d\n%s", code, out)
	}
	// The fill is read back from the third replica.
	deadline := time.Now().Add(time.Minute)
	for {
		out, code = cli("", "orders", "--replica", replicas[2], "--trader", tutorialUser1, "--status", "filled")
		var h struct {
			Orders []struct {
				OrderType string `json:"order_type"`
			} `json:"orders"`
		}
		if code == 0 && json.Unmarshal([]byte(out), &h) == nil && len(h.Orders) == 1 && h.Orders[0].OrderType == "fok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica3 never listed the filled FOK order: exit %d\n%s", code, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, code = cli(tutorialUser2Key, "cancel", "--replica", replicas[1], "--all", "--wait", "--timeout", "60s")
	if code != 0 || !strings.Contains(out, `"cancelled": 1`) {
		t.Fatalf("cancel --all: exit %d\n%s", code, out)
	}
}

// startLocalnet runs `seqbook localnet` on free ports until the test ends
// and returns the replicas' URLs.
func startLocalnet(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command(binary, "localnet", "--dir", t.TempDir(),
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
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() {
			for range lines {
			}
			cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
		}
	})
	var replicas, seen []string
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("localnet ended before it ran:\n%s\n%s", strings.Join(seen, "\n"), errOut.String())
			}
			seen = append(seen, l)
			if f := strings.Fields(l); len(f) >= 2 && strings.HasPrefix(f[0], "replica") && strings.HasPrefix(f[1], "http://") {
				replicas = append(replicas, f[1])
			}
			if strings.Contains(l, "localnet: running") {
				return replicas
			}
		case <-timeout:
			t.Fatalf("localnet not running after 2 minutes:\n%s\n%s", strings.Join(seen, "\n"), errOut.String())
		}
	}
}

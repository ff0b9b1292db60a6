// Package integration_test runs real `seqbook sequencer` processes on
// loopback and checks the cluster from the outside, over the node HTTP API
// only: the same finalized log everywhere, verified proofs, failover after
// the leader is killed, catch-up of a restarted node, and refusal of
// nodes that are not in the cluster file.
//
// The tests are skipped under -short. They build the binary once.
package integration_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seqbook/seqbook/client/seqapi"
	"github.com/seqbook/seqbook/internal/testproc"
	"github.com/seqbook/seqbook/sequencer/node/testnet"
)

// seqbookBin is the binary built by TestMain ("" under -short).
var seqbookBin string

func TestMain(m *testing.M) { os.Exit(testproc.Main(m, "seqbook-integration-bin-", &seqbookBin)) }

// proc is one running `seqbook sequencer`.
type proc struct {
	id   string
	cmd  *exec.Cmd
	log  string        // its stderr, in a file
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done is closed
}

// stop kills the process (if still running) and waits for it.
func (p *proc) stop() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill()
		<-p.done
	}
}

// cluster is a test cluster on disk: cluster file, keys, data folders.
type cluster struct {
	t       *testing.T
	net     *testnet.Net
	dir     string
	file    string
	procs   []*proc
	client  *testnet.Client
	leftLog []string // logs of stopped processes, shown on failure
}

func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real processes; skipped under -short")
	}
	tn, err := testnet.New(n)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file, err := tn.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, net: tn, dir: dir, file: file, procs: make([]*proc, n), client: testnet.NewClient()}
	t.Cleanup(func() {
		for _, p := range c.procs {
			if p != nil {
				p.stop()
			}
		}
		// SEQBOOK_TEST_LOGS=1 shows the nodes' logs of passing runs too.
		if t.Failed() || os.Getenv("SEQBOOK_TEST_LOGS") != "" {
			for _, l := range append(c.leftLog, c.logs()...) {
				c.dumpLog(l)
			}
		}
	})
	return c
}

func (c *cluster) logs() []string {
	var out []string
	for _, p := range c.procs {
		if p != nil {
			out = append(out, p.log)
		}
	}
	return out
}

func (c *cluster) dumpLog(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) > 60 && os.Getenv("SEQBOOK_TEST_LOGS") != "all" {
		lines = lines[len(lines)-60:]
	}
	c.t.Logf("---- last lines of %s ----\n%s", filepath.Base(path), strings.Join(lines, "\n"))
}

// startedCluster starts n nodes and waits until all are ready; it returns
// the cluster and the indexes of its nodes.
func startedCluster(t *testing.T, n int) (*cluster, []int) {
	c := newCluster(t, n)
	all := make([]int, n)
	for i := range n {
		c.start(i)
		all[i] = i
	}
	c.waitReady(all, 30*time.Second)
	return c, all
}

// start runs node i (again, after a kill) from its data folder.
func (c *cluster) start(i int) {
	c.t.Helper()
	id := c.net.File.Nodes[i].ID
	c.procs[i] = c.spawn(id, "--cluster", c.file, "--id", id, "--key", c.net.KeyPath(c.dir, i),
		"--data", filepath.Join(c.dir, "data", id))
}

func (c *cluster) spawn(name string, args ...string) *proc {
	c.t.Helper()
	logPath := filepath.Join(c.dir, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano()))
	f, err := os.Create(logPath)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(seqbookBin, append([]string{"sequencer", "--log-level", "info"}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	p := &proc{id: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); f.Close(); close(p.done) }()
	return p
}

// kill sends SIGKILL to node i: no shutdown, no flush.
func (c *cluster) kill(i int) {
	c.t.Helper()
	p := c.procs[i]
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
	<-p.done
	c.leftLog = append(c.leftLog, p.log)
	c.procs[i] = nil
}

// stopAll sends SIGTERM to every node and requires a clean exit.
func (c *cluster) stopAll() {
	c.t.Helper()
	for _, p := range c.procs {
		if p != nil {
			p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for i, p := range c.procs {
		if p == nil {
			continue
		}
		select {
		case <-p.done:
			if p.err != nil {
				c.t.Errorf("%s exited with %v after SIGTERM", p.id, p.err)
			}
		case <-time.After(15 * time.Second):
			c.t.Errorf("%s did not stop within 15 s of SIGTERM", p.id)
			p.stop()
		}
		c.leftLog = append(c.leftLog, p.log)
		c.procs[i] = nil
	}
}

func (c *cluster) url(i int) string { return "http://" + c.net.File.Nodes[i].HTTP }

func (c *cluster) waitReady(nodes []int, timeout time.Duration) {
	c.t.Helper()
	err := testnet.WaitFor(timeout, 50*time.Millisecond, func() error {
		for _, i := range nodes {
			var r seqapi.Ready
			if err := c.client.GetJSON(c.url(i)+"/node/ready", &r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		c.t.Fatalf("cluster not ready: %v", err)
	}
}

func (c *cluster) state(i int) (seqapi.NodeState, error) {
	var st seqapi.NodeState
	err := c.client.GetJSON(c.url(i)+"/node/state", &st)
	return st, err
}

// put submits a batch to node i, retrying while the node answers 429/503
// (a view change in progress) until the deadline.
func (c *cluster) put(i int, body string) {
	c.t.Helper()
	err := testnet.WaitFor(20*time.Second, 50*time.Millisecond, func() error {
		status, ans, err := c.client.Put(c.url(i)+"/node/"+testnet.DefaultApp+"/batches", []byte(body))
		if err != nil {
			return err
		}
		if status != 200 || !strings.Contains(ans, `"accepted"`) {
			return fmt.Errorf("PUT to node %d: %d %s", i, status, ans)
		}
		return nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
}

// waitSameLog waits until every listed node serves at least want
// finalized batches, all pages verified against the cluster's keys, and
// the logs are identical; a divergence fails at once.
func (c *cluster) waitSameLog(nodes []int, want int, timeout time.Duration) []seqapi.Batch {
	c.t.Helper()
	var first []seqapi.Batch
	err := testnet.WaitFor(timeout, 100*time.Millisecond, func() error {
		logs := make([][]seqapi.Batch, len(nodes))
		for k, i := range nodes {
			l, err := c.client.AllFinalized(c.net.Cluster, c.url(i), testnet.DefaultApp)
			if err != nil {
				if strings.Contains(err.Error(), "page after") {
					c.t.Fatalf("node %d served a page that does not verify: %v", i, err)
				}
				return err
			}
			logs[k] = l
		}
		for k := range logs {
			for j := range logs {
				n := min(len(logs[k]), len(logs[j]))
				for x := 0; x < n; x++ {
					if logs[k][x] != logs[j][x] {
						c.t.Fatalf("nodes %d and %d disagree at index %d: %+v vs %+v", nodes[k], nodes[j], x+1, logs[k][x], logs[j][x])
					}
				}
			}
			if len(logs[k]) < want {
				return fmt.Errorf("node %d has %d finalized batches, want %d", nodes[k], len(logs[k]), want)
			}
			if len(logs[k]) != len(logs[0]) {
				return fmt.Errorf("nodes %d and %d hold %d and %d batches", nodes[0], nodes[k], len(logs[0]), len(logs[k]))
			}
		}
		first = logs[0]
		return nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
	return first
}

// grepLog returns the lines of a log file containing every given string.
func grepLog(t *testing.T, path string, subs ...string) []string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		for _, s := range subs {
			if !strings.Contains(sc.Text(), s) {
				continue next
			}
		}
		out = append(out, sc.Text())
	}
	return out
}

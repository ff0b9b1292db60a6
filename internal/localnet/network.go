package localnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"
)

// Exit describes a child process that ended without being asked to.
type Exit struct {
	ID      string
	Err     error  // what exec's Wait returned (exit status or signal)
	LogPath string // the child's log
	LogTail string // its last lines
}

func (e Exit) String() string {
	return fmt.Sprintf("%s exited unexpectedly (%v); last lines of %s:\n%s", e.ID, e.Err, e.LogPath, indent(e.LogTail))
}

// Network is a running local network. Its methods are safe for concurrent
// use.
type Network struct {
	*Layout
	cfg Config
	out io.Writer

	mu    sync.Mutex
	procs map[string]*proc // the current process of each component
	lock  *os.File         // the folder's lock, released by Stop
}

// proc is one run of one component.
type proc struct {
	comp     Component
	cmd      *exec.Cmd
	log      *os.File
	done     chan struct{} // closed once Wait returned
	waitErr  error         // valid after done is closed
	expected atomic.Bool   // an exit was asked for (Stop/Kill): not a failure
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Start prepares cfg.Dir (see Prepare) and starts every component: all
// nodes, then all replicas, then the aggregator, each group only once the
// previous one answers its readiness probe. On any failure it stops what
// it started and returns an error that carries the failing child's log
// tail.
//
// A second Start on a folder in use, or on ports another program holds,
// is refused before any child starts: otherwise the readiness probes of
// the new network would be answered by the old one.
func Start(ctx context.Context, cfg Config) (*Network, error) {
	if err := cfg.ValidateBasic(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("localnet: %w", err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	l, err := Prepare(cfg)
	if err != nil {
		lock.Close()
		return nil, err
	}
	n := &Network{Layout: l, cfg: cfg, out: cfg.Out, procs: map[string]*proc{}, lock: lock}
	if n.out == nil {
		n.out = io.Discard
	}
	if err := n.checkPortsFree(); err != nil {
		n.Stop()
		return nil, err
	}
	for _, kind := range []string{KindSequencer, KindReplica, KindAggregator} {
		if !n.starts(kind) {
			continue
		}
		var ids []string
		for _, c := range l.Components {
			if c.Kind == kind {
				ids = append(ids, c.ID)
			}
		}
		if err := n.startGroup(ctx, ids); err != nil {
			n.Stop()
			return nil, err
		}
	}
	return n, nil
}

// startGroup starts the components together (sequencer nodes may wait for
// each other before they call themselves ready) and waits for all of them.
func (n *Network) startGroup(ctx context.Context, ids []string) error {
	for _, id := range ids {
		if err := n.spawn(id); err != nil {
			return err
		}
	}
	for _, id := range ids {
		if err := n.waitReady(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// StartComponent starts one stopped component and waits until it is ready.
func (n *Network) StartComponent(ctx context.Context, id string) error {
	if err := n.spawn(id); err != nil {
		return err
	}
	return n.waitReady(ctx, id)
}

// Restart stops a component gracefully (SIGTERM, then SIGKILL after the
// grace period) and starts it again.
func (n *Network) Restart(ctx context.Context, id string) error {
	if err := n.StopComponent(id); err != nil {
		return err
	}
	return n.StartComponent(ctx, id)
}

// Kill sends SIGKILL to a component's process group and waits until it is
// gone: a crash, as the chaos test wants it.
func (n *Network) Kill(id string) error {
	p, err := n.current(id)
	if err != nil {
		return err
	}
	p.expected.Store(true)
	signalGroup(p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	return nil
}

// StopComponent stops one component gracefully.
func (n *Network) StopComponent(id string) error {
	p, err := n.current(id)
	if err != nil {
		return err
	}
	n.terminate([]*proc{p})
	return nil
}

// Running reports whether a component's process is alive.
func (n *Network) Running(id string) bool {
	n.mu.Lock()
	p := n.procs[id]
	n.mu.Unlock()
	return p != nil && !p.exited()
}

// PID returns the process id of a component's current process, 0 if none.
func (n *Network) PID(id string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.procs[id]; p != nil && !p.exited() {
		return p.cmd.Process.Pid
	}
	return 0
}

// Stop stops every component: the aggregator first, then the replicas, then
// the nodes (so no reader logs errors about a node that went away first),
// each with SIGTERM and SIGKILL after the grace period. It waits until all
// are gone.
func (n *Network) Stop() {
	for _, kind := range []string{KindAggregator, KindReplica, KindSequencer} {
		var ps []*proc
		n.mu.Lock()
		for _, c := range n.Components {
			if p := n.procs[c.ID]; c.Kind == kind && p != nil && !p.exited() {
				ps = append(ps, p)
			}
		}
		n.mu.Unlock()
		n.terminate(ps)
	}
	n.mu.Lock()
	if n.lock != nil {
		n.lock.Close() // closing the file releases the flock
		n.lock = nil
	}
	n.mu.Unlock()
}

// starts says whether Start runs the components of this kind.
func (n *Network) starts(kind string) bool {
	return len(n.cfg.Kinds) == 0 || slices.Contains(n.cfg.Kinds, kind)
}

// checkPortsFree binds, for a moment, every address the network is about
// to listen on (TCP for HTTP, UDP for QUIC) and names the first taken one.
func (n *Network) checkPortsFree() error {
	type addr struct{ network, hostPort, what string }
	var want []addr
	if n.starts(KindSequencer) {
		for _, nd := range n.Cluster.Nodes {
			want = append(want, addr{"tcp", nd.HTTP, nd.ID + " HTTP"}, addr{"udp", nd.QUIC, nd.ID + " QUIC"})
		}
	}
	if n.starts(KindReplica) {
		for _, r := range n.Cluster.Replicas {
			want = append(want, addr{"tcp", r.HTTP, r.ID + " HTTP"})
		}
	}
	if n.starts(KindAggregator) {
		want = append(want, addr{"tcp", n.Cluster.Aggregator.HTTP, "aggregator HTTP"})
	}
	for _, a := range want {
		var c io.Closer
		var err error
		if a.network == "udp" {
			c, err = net.ListenPacket("udp", a.hostPort)
		} else {
			c, err = net.Listen("tcp", a.hostPort)
		}
		if err != nil {
			return fmt.Errorf("localnet: %s (%s, from %s) is in use: is another localnet running? Stop it, or start in another --dir with other ports: %w",
				a.hostPort, a.what, n.ClusterPath, err)
		}
		c.Close()
	}
	return nil
}

// terminate SIGTERMs the processes, waits up to the grace period, then
// SIGKILLs the rest and waits for them.
func (n *Network) terminate(ps []*proc) {
	for _, p := range ps {
		p.expected.Store(true)
		signalGroup(p.cmd.Process.Pid, syscall.SIGTERM)
	}
	deadline := time.NewTimer(n.cfg.StopGrace)
	defer deadline.Stop()
	for _, p := range ps {
		select {
		case <-p.done:
		case <-deadline.C:
			// The timer fired once; from here on kill whatever is left.
			for _, q := range ps {
				if !q.exited() {
					fmt.Fprintf(n.out, "localnet: %s did not stop within %s, killing it\n", q.comp.ID, n.cfg.StopGrace)
					signalGroup(q.cmd.Process.Pid, syscall.SIGKILL)
				}
			}
			for _, q := range ps {
				<-q.done
			}
			return
		}
	}
}

func (n *Network) current(id string) (*proc, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.procs[id]
	if p == nil {
		if _, ok := n.Component(id); !ok {
			return nil, fmt.Errorf("localnet: no component %q", id)
		}
		return nil, fmt.Errorf("localnet: %s was never started", id)
	}
	return p, nil
}

// args is the command line of a component (the flags agreed in DESIGN §7's
// commands).
func (n *Network) args(c Component) []string {
	var args []string
	switch c.Kind {
	case KindSequencer:
		args = []string{KindSequencer, "--cluster", n.ClusterPath, "--id", c.ID, "--key", c.KeyPath, "--data", c.DataDir}
	case KindReplica:
		args = append([]string{KindReplica, "--cluster", n.ClusterPath, "--id", c.ID, "--key", c.KeyPath, "--data", c.DataDir, "--genesis", n.GenesisPath}, n.cfg.ReplicaArgs...)
	default:
		args = []string{KindAggregator, "--cluster", n.ClusterPath}
	}
	return append(args, n.cfg.LogArgs...)
}

// spawn starts a component's process; it refuses to start one that runs.
func (n *Network) spawn(id string) error {
	c, ok := n.Component(id)
	if !ok {
		return fmt.Errorf("localnet: no component %q", id)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.procs[id]; p != nil && !p.exited() {
		return fmt.Errorf("localnet: %s is already running (pid %d)", id, p.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(c.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("localnet: %w", err)
	}
	args := n.args(c)
	fmt.Fprintf(logf, "\n=== localnet %s: starting %s: %s %s\n", time.Now().Format(time.RFC3339), id, n.cfg.Binary, strings.Join(args, " "))
	cmd := exec.Command(n.cfg.Binary, args...)
	cmd.Dir = n.Dir
	cmd.Env = append(os.Environ(), n.cfg.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("localnet: starting %s: %w", id, err)
	}
	p := &proc{comp: c, cmd: cmd, log: logf, done: make(chan struct{})}
	n.procs[id] = p
	go n.supervise(p)
	return nil
}

// supervise waits for a process and reports it if nobody asked it to end.
func (n *Network) supervise(p *proc) {
	p.waitErr = p.cmd.Wait()
	p.log.Close()
	close(p.done)
	if p.expected.Load() {
		return
	}
	e := Exit{ID: p.comp.ID, Err: p.waitErr, LogPath: p.comp.LogPath, LogTail: LogTail(p.comp.LogPath, logTailLines)}
	if e.Err == nil {
		e.Err = errors.New("exit status 0")
	}
	fmt.Fprintf(n.out, "localnet: %s\n", e)
	if n.cfg.OnExit != nil {
		n.cfg.OnExit(e)
	}
}

// logTailLines is how much of a dead child's log a report shows.
const logTailLines = 20

// readyPollInterval is how often a readiness probe is repeated.
const readyPollInterval = 50 * time.Millisecond

// readyPath is the readiness probe of each kind, answered 200 once the
// component serves: the node's GET /node/ready (its protocol loop runs),
// the replica's GET /state, the aggregator's GET /ready.
func readyPath(kind string) string {
	switch kind {
	case KindSequencer:
		return "/node/ready"
	case KindReplica:
		return "/state"
	default:
		return "/ready"
	}
}

// waitReady polls a component's readiness probe until it answers, the
// process dies (an error with its log tail), ReadyTimeout passes, or ctx
// ends.
func (n *Network) waitReady(ctx context.Context, id string) error {
	p, err := n.current(id)
	if err != nil {
		return err
	}
	url := p.comp.URL() + readyPath(p.comp.Kind)
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(n.cfg.ReadyTimeout)
	tick := time.NewTicker(readyPollInterval)
	defer tick.Stop()
	for {
		if p.exited() {
			return fmt.Errorf("localnet: %s exited before it was ready (%v); last lines of %s:\n%s",
				id, p.waitErr, p.comp.LogPath, indent(LogTail(p.comp.LogPath, logTailLines)))
		}
		if resp, err := client.Get(url); err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("localnet: %s not ready after %s (GET %s); last lines of %s:\n%s",
				id, n.cfg.ReadyTimeout, url, p.comp.LogPath, indent(LogTail(p.comp.LogPath, logTailLines)))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("localnet: waiting for %s: %w", id, ctx.Err())
		case <-p.done:
		case <-tick.C:
		}
	}
}

// WriteEndpoints prints where every component listens.
func (n *Network) WriteEndpoints(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tHTTP\tQUIC\tPID\tLOG")
	for _, c := range n.Components {
		quic := "-"
		if i, ok := n.Cluster.NodeIndex(c.ID); ok && c.Kind == KindSequencer {
			quic = n.Cluster.Nodes[i].QUIC
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", c.ID, c.URL(), quic, n.PID(c.ID), c.LogPath)
	}
	tw.Flush()
}

// LogTail returns the last lines of a file (at most the last 16 KiB).
func LogTail(path string, lines int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	const tailBytesMax = 16 << 10
	if st, err := f.Stat(); err == nil && st.Size() > tailBytesMax {
		f.Seek(st.Size()-tailBytesMax, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, tailBytesMax))
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

package integration_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/obapi"
	"github.com/seqbook/seqbook/internal/localnet"
	"github.com/seqbook/seqbook/internal/testproc"
)

// TestDamagedDatabaseIsNeverSigned damages a stopped replica's real bbolt
// file three ways (one byte of a balance changed, leaving the file
// well-formed; the file truncated to half; one byte of the local batch
// log flipped) and restarts the real process each time. The replica must
// not serve the damaged state: it names the file and the damage in its
// log (blaming no sequencer), keeps the file aside, rebuilds from the
// sequencer's verified history, and ends with the other replicas' digest
// and the true balance. From the moment its process starts until it says
// it is rebuilt, its signed routes are polled without a pause: each answer
// is 503 with a JSON error saying it rebuilds (or no answer while it does
// not listen yet), never a signature. The sequencer's nodes are stopped
// (SIGSTOP) while it starts, so it spends a while rebuilding whatever the
// machine's speed. With --on-corruption refuse it exits at once, printing
// the repair command.
func TestDamagedDatabaseIsNeverSigned(t *testing.T) {
	// Attestations every 4 indexes: the rebuild also waits for a quorum
	// to attest the rebuilt state.
	nw := startNetwork(t, "--attest-every", "4")
	replicas := []string{"replica1", "replica2", "replica3"}
	trader := localnet.TraderKey(0)
	// A few orders through replica2: replica1's batch log then holds their
	// signatures (and its outbox none of them).
	var sigs []string
	for n := uint64(1); n <= 4; n++ {
		req, _ := nw.signOrder(trader, []string{"buy", "sell"}[n%2], 100_000, 2000_000_000, n)
		if _, err := call("POST", nw.replicaURL("replica2")+"/order?wait=finalized", req, nil); err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, req.Signature)
	}
	// A withdrawal: GET /withdrawals/{id} is a signed read too.
	var wres obapi.OpResult
	wreq := nw.signWithdraw(trader, "USDT", 1_000_000, common.HexToAddress(localnet.TutorialUser2Address), 100)
	if _, err := call("POST", nw.replicaURL("replica2")+"/withdraw?wait=finalized", wreq, &wres); err != nil || wres.Status != "applied" {
		t.Fatalf("withdrawal: %v %+v", err, wres)
	}
	want := agreedState(t, nw, replicas)

	user := common.HexToAddress(localnet.TutorialUser1Address).Hex()
	trueUnits := uint64(localnet.TutorialUser1USDT)
	c1, _ := nw.net.Component("replica1")
	db := filepath.Join(c1.DataDir, "replica.db")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	signed := []string{"/balance?address=" + user + "&token=USDT", "/withdrawals/" + wres.ID, "/attestation"}
	damage := []struct {
		name, logHas string
		harm         func(b []byte) []byte
	}{
		{"one byte of a balance", "fails its checksum", func(b []byte) []byte {
			// The matcher snapshot writes a balance as
			// len(account) account len(token) token uvarint(available).
			pat := append([]byte{byte(len(user))}, user...)
			pat = append(pat, 4)
			pat = append(pat, "USDT"...)
			pat = binary.AppendUvarint(pat, trueUnits)
			if !bytes.Contains(b, pat) {
				t.Fatal("the balance is not in the file")
			}
			// Every copy (bbolt keeps old pages too): the value goes from
			// N to N±1, still a well-formed uvarint.
			at := len(pat) - len(binary.AppendUvarint(nil, trueUnits))
			for i := bytes.Index(b, pat); i >= 0; {
				b[i+at] ^= 1
				j := bytes.Index(b[i+1:], pat)
				if j < 0 {
					break
				}
				i += 1 + j
			}
			return b
		}},
		{"truncated to half", "truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"one byte of the batch log", "logged batch", func(b []byte) []byte {
			n := 0
			for _, sig := range sigs {
				for i := bytes.Index(b, []byte(sig)); i >= 0; i = bytes.Index(b, []byte(sig)) {
					b[i+10] ^= 0x01 // a hex digit becomes another one
					n++
				}
			}
			if n == 0 {
				t.Fatal("no logged batch in the file")
			}
			return b
		}},
	}
	for _, d := range damage {
		if err := nw.net.StopComponent("replica1"); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(db)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(db, d.harm(b), 0o600); err != nil {
			t.Fatal(err)
		}
		logBefore, _ := os.ReadFile(c1.LogPath)
		resume := pauseSequencer(t, nw.net)
		watch := watchRebuild(nw.replicaURL("replica1"), signed, 2*time.Minute)
		if err := nw.net.StartComponent(ctx, "replica1"); err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		// Until it refused a few reads (or answered one otherwise:
		// watch.wait reports it).
		testproc.WaitFor(t, d.name+": replica1 refuses signed reads while rebuilding", time.Minute, func() (bool, string) {
			return watch.refused.Load() >= 3 || watch.signed.Load() > 0, fmt.Sprint(watch.refused.Load(), " refusals")
		})
		resume()
		watch.wait(t, d.name)
		logs, _ := os.ReadFile(c1.LogPath)
		run := string(logs[len(logBefore):])
		if !strings.Contains(run, db) || !strings.Contains(run, d.logHas) || !strings.Contains(run, "not the sequencer") {
			t.Fatalf("%s: the log does not name %s and %q:\n%s", d.name, db, d.logHas, run)
		}
		testproc.WaitFor(t, d.name+": replica1 rebuilt to the others' state", 2*time.Minute, func() (bool, string) {
			var s obapi.State
			if _, err := call("GET", nw.replicaURL("replica1")+"/state", nil, &s); err != nil {
				return false, err.Error()
			}
			return s.AppliedIndex >= want.AppliedIndex, fmt.Sprint(s.AppliedIndex)
		})
		if got := agreedState(t, nw, replicas); got.StateDigest != want.StateDigest && got.AppliedIndex == want.AppliedIndex {
			t.Fatalf("%s: digest %s after the rebuild, want %s", d.name, got.StateDigest, want.StateDigest)
		}
		var bal obapi.Balance
		if _, err := call("GET", nw.replicaURL("replica1")+"/balance?address="+user+"&token=USDT", nil, &bal); err != nil {
			t.Fatal(err)
		}
		if bal.BalanceUnits != fmt.Sprint(trueUnits) || bal.Index < want.AppliedIndex || bal.Signature == "" {
			t.Fatalf("%s: replica1 signs a balance of %s at %d, the true one is %d at %d", d.name, bal.BalanceUnits, bal.Index, trueUnits, want.AppliedIndex)
		}
		var w obapi.Withdrawal
		if _, err := call("GET", nw.replicaURL("replica1")+"/withdrawals/"+wres.ID, nil, &w); err != nil || w.AmountUnits != "1000000" || w.Signature == "" {
			t.Fatalf("%s: rebuilt, replica1 answers the withdrawal with %v %+v", d.name, err, w)
		}
		aside, _ := filepath.Glob(db + ".corrupt-*")
		if len(aside) == 0 {
			t.Fatalf("%s: the damaged file was not kept aside", d.name)
		}
	}

	// --on-corruption refuse: exit at once with the repair command.
	if err := nw.net.StopComponent("replica1"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(db)
	if err := os.WriteFile(db, b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(seqbookBin, "replica", "--cluster", nw.net.ClusterPath, "--id", "replica1", "--key", c1.KeyPath,
		"--data", c1.DataDir, "--genesis", nw.net.GenesisPath, "--listen", "127.0.0.1:0", "--on-corruption", "refuse")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "mv ") || !strings.Contains(string(out), db) {
		t.Fatalf("refuse mode: %v\n%s", err, out)
	}
}

// pauseSequencer stops every sequencer node (SIGSTOP) until resume is
// called (at the latest when the test ends): meanwhile no replica fetches
// a batch or learns the finalized head.
func pauseSequencer(t *testing.T, n *localnet.Network) (resume func()) {
	t.Helper()
	var pids []int
	for _, c := range n.Components {
		if c.Kind == localnet.KindSequencer {
			pid := n.PID(c.ID)
			if pid == 0 {
				t.Fatalf("%s does not run", c.ID)
			}
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			pids = append(pids, pid)
		}
	}
	var once sync.Once
	resume = func() {
		once.Do(func() {
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGCONT)
			}
		})
	}
	t.Cleanup(resume)
	return resume
}

// signedRead is one answer of a signed route.
type signedRead struct {
	path   string
	status int    // 0: no answer
	err    error  // why there was no answer
	msg    string // the JSON error of a non-200 answer; a 200's body (clipped)
}

func readSigned(base, path string) signedRead {
	a := signedRead{path: path}
	resp, err := httpc.Get(base + path)
	if err != nil {
		a.err = err
		return a
	}
	defer resp.Body.Close()
	a.status = resp.StatusCode
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if a.status == http.StatusOK {
		a.msg = string(raw[:min(len(raw), 300)])
	} else {
		var e obapi.Error
		if err := json.Unmarshal(raw, &e); err != nil || e.Error == "" {
			a.msg = "not a JSON error: " + string(raw)
		} else {
			a.msg = e.Error
		}
	}
	return a
}

// signsNothing: no process listened, or it answered 503 with a JSON error
// holding one of words.
func (a signedRead) signsNothing(words ...string) bool {
	if a.err != nil {
		return errors.Is(a.err, syscall.ECONNREFUSED)
	}
	if a.status != http.StatusServiceUnavailable {
		return false
	}
	for _, w := range words {
		if strings.Contains(a.msg, w) {
			return true
		}
	}
	return false
}

func (a signedRead) String() string {
	if a.err != nil {
		return fmt.Sprintf("GET %s: %v", a.path, a.err)
	}
	return fmt.Sprintf("GET %s: %d %s", a.path, a.status, a.msg)
}

// rebuildWatch polls a replica's signed routes, then its GET /state, in
// rounds, from before its process starts until a round's GET /state says
// it is not rebuilding. A replica is born rebuilding and never goes back,
// so in a round whose GET /state (read last) says it still rebuilds, or
// finds nothing listening, every signed route must have signed nothing.
type rebuildWatch struct {
	refused atomic.Int64 // 503 answers saying the replica rebuilds
	signed  atomic.Int64 // answers while rebuilding that were no refusal
	done    chan struct{}
	// Read after done: signed or unexpected answers while rebuilding,
	// the rounds, whether the deadline passed first.
	bad      []signedRead
	rounds   int
	timedOut bool
}

// watchRebuild watches for at most d.
func watchRebuild(base string, paths []string, d time.Duration) *rebuildWatch {
	w := &rebuildWatch{done: make(chan struct{})}
	deadline := time.Now().Add(d)
	go func() {
		defer close(w.done)
		for ; ; w.rounds++ {
			if time.Now().After(deadline) {
				w.timedOut = true
				return
			}
			var round []signedRead
			for _, p := range paths {
				round = append(round, readSigned(base, p))
			}
			var st obapi.State
			_, err := call("GET", base+"/state", nil, &st)
			if err == nil && st.Rebuilding == nil {
				return // the rebuild ended during this round
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				time.Sleep(5 * time.Millisecond) // not listening yet: no busy loop
			} else if err != nil {
				continue // no telling when this round was
			}
			for _, a := range round {
				switch {
				case !a.signsNothing("is rebuilding"):
					w.signed.Add(1)
					if len(w.bad) < 20 {
						w.bad = append(w.bad, a)
					}
				case a.err == nil:
					w.refused.Add(1)
				}
			}
		}
	}()
	return w
}

// wait waits until the replica says it is rebuilt, and fails the test if
// it signed, or answered anything but a refusal, while rebuilding.
func (w *rebuildWatch) wait(t *testing.T, what string) {
	t.Helper()
	<-w.done
	if w.timedOut {
		t.Fatalf("%s: the replica still rebuilds after %d rounds of reads (last answers refused: %d)", what, w.rounds, w.refused.Load())
	}
	if len(w.bad) > 0 {
		t.Fatalf("%s: while rebuilding, the replica answered:\n%v", what, w.bad)
	}
	t.Logf("%s: %d rounds of signed reads while rebuilding, %d refusals", what, w.rounds, w.refused.Load())
}

// agreedState waits until every replica reports the same applied index,
// chaining hash and state digest, past index 0.
func agreedState(t *testing.T, nw *network, replicas []string) obapi.State {
	t.Helper()
	var first obapi.State
	testproc.WaitFor(t, "replicas at the same index with the same digest", 2*time.Minute, func() (bool, string) {
		var states []obapi.State
		for _, r := range replicas {
			var s obapi.State
			if _, err := call("GET", nw.replicaURL(r)+"/state", nil, &s); err != nil {
				return false, err.Error()
			}
			states = append(states, s)
		}
		for _, s := range states[1:] {
			if s.AppliedIndex != states[0].AppliedIndex || s.StateDigest != states[0].StateDigest || s.ChainingHash != states[0].ChainingHash {
				return false, fmt.Sprintf("%+v vs %+v", states[0], s)
			}
		}
		first = states[0]
		return first.AppliedIndex > 0, ""
	})
	return first
}

// TestDivergedReplicaIsCaughtByAttestations: replica3 restarted from a
// clean folder with another genesis (one extra balance) computes another
// state digest at every index. The other replicas' attestations show it:
// it rebuilds once from the sequencer's history, diverges again (the cause
// is its genesis, not its files), and stops with an error that says so,
// instead of signing state a quorum disowns. From the moment it logs the
// divergence until it exits, every signed read it answers is a 503:
// diverged, then rebuilding (its rebuilt state is no quorum's, so the
// rebuild never ends).
func TestDivergedReplicaIsCaughtByAttestations(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes; skipped under -short")
	}
	n := testproc.StartNetwork(t, seqbookBin, 40, func(cfg *localnet.Config) {
		cfg.Kinds = []string{localnet.KindSequencer, localnet.KindReplica}
		cfg.Traders = 4
		cfg.ReplicaArgs = []string{"--attest-every", "1"}
	})
	nw := &network{t: t, net: n, dom: n.Cluster.Domain}
	if err := n.StopComponent("replica3"); err != nil {
		t.Fatal(err)
	}
	c3, _ := n.Component("replica3")
	if err := os.RemoveAll(c3.DataDir); err != nil {
		t.Fatal(err)
	}
	g, err := os.ReadFile(n.GenesisPath)
	if err != nil {
		t.Fatal(err)
	}
	// The genesis is the list layout localnet writes (docs/operations.md).
	other := bytes.Replace(g, []byte(`"balances": [`), []byte(`"balances": [{"address": "0x000000000000000000000000000000000000dEaD", "token": "ETH", "amount": "1"}, `), 1)
	if bytes.Equal(other, g) {
		t.Fatalf("cannot alter the genesis file:\n%s", g)
	}
	otherPath := filepath.Join(t.TempDir(), "other-genesis.json")
	if err := os.WriteFile(otherPath, other, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(seqbookBin, "replica", "--cluster", n.ClusterPath, "--id", "replica3", "--key", c3.KeyPath,
		"--data", c3.DataDir, "--genesis", otherPath, "--attest-every", "1")
	var out testproc.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })

	trader := localnet.TraderKey(1)
	signed := []string{"/balance?address=" + ethsig.Address(trader).Hex() + "&token=USDT", "/attestation"}
	var signedAfter []signedRead // answers after the divergence that were not refusals
	var refusals int
	stopWatch, watchDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			select {
			case <-stopWatch:
				return
			default:
			}
			// Read before the answers: the line is logged once the
			// replica refuses.
			diverged := strings.Contains(out.String(), "differs from a quorum")
			for _, p := range signed {
				a := readSigned(c3.URL(), p)
				switch {
				case !diverged:
				case a.signsNothing("differs from the one a quorum", "is rebuilding"):
					refusals++
				case len(signedAfter) < 20:
					signedAfter = append(signedAfter, a)
				}
			}
			if !diverged {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { close(stopWatch) }) }
	t.Cleanup(stop)
	watched := func() {
		stop()
		<-watchDone
		if len(signedAfter) > 0 {
			t.Fatalf("replica3 answered signed reads after it found its state diverged:\n%v", signedAfter)
		}
		t.Logf("replica3 refused %d signed reads between the divergence and its exit", refusals)
	}

	// Orders through replica1 make new indexes, each attested.
	for k := uint64(1); ; k++ {
		req, _ := nw.signOrder(trader, "buy", 100_000, 1000_000_000, k)
		if _, err := call("POST", nw.replicaURL("replica1")+"/order?wait=finalized", req, nil); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			watched()
			log := out.String()
			if err == nil || !strings.Contains(log, "differs from a quorum") || !strings.Contains(log, "again after rebuilding") {
				t.Fatalf("replica3 exited (%v) without the expected account:\n%s", err, log)
			}
			if aside, _ := filepath.Glob(filepath.Join(c3.DataDir, "replica.db.corrupt-*")); len(aside) != 1 {
				t.Fatalf("%d databases set aside, want 1 (one rebuild)", len(aside))
			}
			return
		default:
		}
		if k > 60 {
			t.Fatalf("replica3 still runs after %d attested indexes:\n%s", k, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

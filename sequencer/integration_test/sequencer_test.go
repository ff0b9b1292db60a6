package integration_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/seqbook/seqbook/client/bls"
	clusterpkg "github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/seqapi"
	"github.com/seqbook/seqbook/sequencer/node/testnet"
)

// TestFinalityFailoverAndCatchUp: four processes; batches PUT to every
// node finalize in one order everywhere with verified proofs; the leader
// is SIGKILLed and the other three elect a new one and keep finalizing;
// the killed node restarts from its data folder, catches up and follows.
func TestFinalityFailoverAndCatchUp(t *testing.T) {
	c, all := startedCluster(t, 4)

	// 1. Batches to every node, one order everywhere.
	sent := map[string]bool{}
	for k := 0; k < 16; k++ {
		body := fmt.Sprintf(`{"phase":1,"k":%d,"text":"héllo \"quoted\" \\ line\nbreak"}`, k)
		c.put(k%4, body)
		sent[body] = true
	}
	log := c.waitSameLog(all, 16, 30*time.Second)
	checkExactlyOnce(t, log, sent)

	// 2. Kill the leader; the others move on.
	st, err := c.state(0)
	if err != nil {
		t.Fatal(err)
	}
	leader, ok := c.net.Cluster.NodeIndex(st.Leader)
	if !ok {
		t.Fatalf("state names leader %q, not a node of the cluster", st.Leader)
	}
	t.Logf("view %d, leader %s: killing it", st.View, st.Leader)
	c.kill(leader)
	var rest []int
	for i := range 4 {
		if i != leader {
			rest = append(rest, i)
		}
	}
	var newLeader string
	err = testnet.WaitFor(30*time.Second, 100*time.Millisecond, func() error {
		for _, i := range rest {
			s, err := c.state(i)
			if err != nil {
				return err
			}
			if s.View <= st.View || s.Leader == st.Leader {
				return fmt.Errorf("node %d: view %d, leader %s", i, s.View, s.Leader)
			}
			newLeader = s.Leader
		}
		return nil
	})
	if err != nil {
		t.Fatalf("no new leader after killing %s: %v", st.Leader, err)
	}
	t.Logf("new leader %s", newLeader)
	for k := 0; k < 9; k++ {
		body := fmt.Sprintf(`{"phase":2,"k":%d}`, k)
		c.put(rest[k%3], body)
		sent[body] = true
	}
	log = c.waitSameLog(rest, len(sent), 30*time.Second)
	checkExactlyOnce(t, log, sent)

	// 3. The killed node restarts from its data folder and catches up.
	c.start(leader)
	c.waitSameLog(all, len(sent), 30*time.Second)
	for k := 0; k < 8; k++ {
		body := fmt.Sprintf(`{"phase":3,"k":%d}`, k)
		c.put(k%4, body) // includes the restarted node
		sent[body] = true
	}
	log = c.waitSameLog(all, len(sent), 30*time.Second)
	checkExactlyOnce(t, log, sent)

	// The last-batch route agrees with the log on every node.
	for i := range 4 {
		var last seqapi.FinalizedPage
		if err := c.client.GetJSON(c.url(i)+"/node/"+testnet.DefaultApp+"/batches/finalized/last", &last); err != nil {
			t.Fatal(err)
		}
		if len(last.Batches) != 1 || last.Finalized == nil || last.Batches[0].Index < uint64(len(sent)) {
			t.Fatalf("node %d last: %+v", i, last)
		}
		if err := testnet.VerifyProof(c.net.Cluster, testnet.DefaultApp, last.Finalized); err != nil {
			t.Fatal(err)
		}
	}
	c.stopAll()
}

// checkExactlyOnce requires every sent body in the log exactly once and
// nothing else.
func checkExactlyOnce(t *testing.T, log []seqapi.Batch, sent map[string]bool) {
	t.Helper()
	seen := map[string]int{}
	for _, b := range log {
		if !sent[b.Body] {
			t.Fatalf("finalized batch %d was never sent: %q", b.Index, b.Body)
		}
		seen[b.Body]++
	}
	for body := range sent {
		if seen[body] != 1 {
			t.Fatalf("batch %q finalized %d times", body, seen[body])
		}
	}
}

// TestOutsidersCannotInject: a process with a key that is not in the
// cluster file cannot get a single message into an honest node, whether
// it poses as a member (its own copy of the file swaps node4's key for
// its own) or as an extra node. The honest nodes log the refusal, keep
// finalizing, and never list the outsider as connected.
func TestOutsidersCannotInject(t *testing.T) {
	c := newCluster(t, 4)
	// node4 stays down: the impostor takes its id.
	for i := range 3 {
		c.start(i)
	}
	honest := []int{0, 1, 2}

	outsiderKey, err := bls.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	// Same id and addresses as node4, another key.
	impostorMember := c.net.File.Nodes[3]
	impostorMember.BLSPubkey = outsiderKey.PublicKey().Hex()
	impostorMember.BLSPop = outsiderKey.ProvePossession().Hex()
	forged := c.net.File
	forged.Nodes = append([]clusterpkg.Member(nil), c.net.File.Nodes...)
	forged.Nodes[3] = impostorMember
	impostor := c.spawnOutsider("impostor", forged, "node4", outsiderKey)

	extraMember, extraKey, err := testnet.NewMember("node5")
	if err != nil {
		t.Fatal(err)
	}
	bigger := c.net.File
	bigger.Nodes = append(append([]clusterpkg.Member(nil), c.net.File.Nodes...), extraMember)
	extra := c.spawnOutsider("extra", bigger, "node5", extraKey)

	// The three honest nodes are a quorum: they finalize with or without
	// the outsiders around.
	c.waitReady(honest, 30*time.Second)
	sent := map[string]bool{}
	for k := 0; k < 6; k++ {
		body := fmt.Sprintf(`{"k":%d}`, k)
		c.put(k%3, body)
		sent[body] = true
	}
	checkExactlyOnce(t, c.waitSameLog(honest, 6, 30*time.Second), sent)

	// Every honest node refused both outsiders, by their QUIC source port.
	for _, o := range []struct {
		p      *proc
		quic   string
		reason string
	}{
		{impostor, impostorMember.QUIC, "does not verify with its cluster key"},
		{extra, extraMember.QUIC, "is not a node of the cluster"},
	} {
		remote := "remote=" + o.quic
		err := testnet.WaitFor(20*time.Second, 100*time.Millisecond, func() error {
			for _, i := range honest {
				if len(grepLog(t, c.procs[i].log, "refused inbound connection", remote, o.reason)) == 0 {
					return fmt.Errorf("%s has not logged refusing %s (%s)", c.procs[i].id, o.p.id, o.reason)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range honest {
			if acc := grepLog(t, c.procs[i].log, "peer connected in", remote); len(acc) > 0 {
				t.Fatalf("%s accepted %s: %s", c.procs[i].id, o.p.id, acc[0])
			}
		}
	}
	// The honest nodes also refuse to talk to the impostor at node4's
	// address when they dial it.
	for _, i := range honest {
		if len(grepLog(t, c.procs[i].log, "peer failed authentication", "peer=node4")) == 0 {
			t.Fatalf("%s never checked node4's address and refused the impostor", c.procs[i].id)
		}
	}
	impostor.stop()
	extra.stop()
	c.stopAll()
}

// spawnOutsider starts a `seqbook sequencer` with its own copy of the
// cluster file and its own key.
func (c *cluster) spawnOutsider(name string, f clusterpkg.File, id string, key *bls.SecretKey) *proc {
	c.t.Helper()
	dir := filepath.Join(c.dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		c.t.Fatal(err)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		c.t.Fatal(err)
	}
	file := filepath.Join(dir, "cluster.json")
	keyPath := filepath.Join(dir, id+".key")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, []byte(key.Hex()), 0o600); err != nil {
		c.t.Fatal(err)
	}
	p := c.spawn(name, "--cluster", file, "--id", id, "--key", keyPath, "--data", filepath.Join(dir, "data"))
	c.t.Cleanup(func() {
		p.stop()
		if c.t.Failed() {
			c.dumpLog(p.log)
		}
	})
	return p
}

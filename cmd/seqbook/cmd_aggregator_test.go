package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/seqbook/seqbook/client/cluster"
)

// seqbook aggregator must refuse to start on a cluster file with a replica
// key whose proof of possession does not verify (a possible rogue key).
func TestAggregatorRefusesClusterWithoutValidPoP(t *testing.T) {
	c, _ := memCluster(t, 3)
	write := func(f cluster.File) string {
		b, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "cluster.json")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := c.File
	bad.Replicas = append([]cluster.Member(nil), c.Replicas...)
	bad.Replicas[1].BLSPop = bad.Replicas[0].BLSPop
	if code := runAggregator([]string{"--cluster", write(bad), "--listen", "127.0.0.1:0"}); code != 1 {
		t.Fatalf("exit %d on a cluster file with a bad proof of possession, want 1", code)
	}
	if code := runAggregator([]string{"--listen", "127.0.0.1:0"}); code != 2 {
		t.Fatalf("exit %d without --cluster, want 2", code)
	}
}

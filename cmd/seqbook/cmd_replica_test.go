package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/keys"
)

func TestReplicaCommandRefusesBadSetups(t *testing.T) {
	tn := newClientTestNet(t)
	dir := t.TempDir()
	otherKey, err := bls.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := filepath.Join(dir, "wrong.bls")
	if err := keys.WriteBLS(wrongKey, otherKey); err != nil {
		t.Fatal(err)
	}
	rightKey := filepath.Join(dir, "replica1.bls")
	if err := keys.WriteBLS(rightKey, tn.replicaKeys[0]); err != nil {
		t.Fatal(err)
	}
	badGenesis := filepath.Join(dir, "genesis.json")
	if err := os.WriteFile(badGenesis, []byte(`{"balances":[{"address":"0x12","token":"ETH","amount":"1"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"help", []string{"--help"}, 0},
		{"missing id", []string{"--cluster", tn.path, "--key", rightKey, "--data", data}, 1},
		{"unknown replica", []string{"--cluster", tn.path, "--id", "replica9", "--key", rightKey, "--data", data}, 1},
		{"key of another replica", []string{"--cluster", tn.path, "--id", "replica1", "--key", wrongKey, "--data", data}, 1},
		{"bad genesis", []string{"--cluster", tn.path, "--id", "replica1", "--key", rightKey, "--data", data, "--genesis", badGenesis}, 1},
		{"stray argument", []string{"--cluster", tn.path, "--id", "replica1", "--key", rightKey, "--data", data, "extra"}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := runReplica(c.args); got != c.code {
				t.Fatalf("exit code %d, want %d", got, c.code)
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Fatalf("a refused start created the data directory (%v)", err)
			}
		})
	}
}

// Package testnet makes throwaway sequencer clusters for tests: fresh BLS
// keys, a cluster file on free loopback ports. It is only imported by
// tests (and test binaries), never by a running node.
package testnet

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
)

// DefaultApp is the app name test clusters use.
const DefaultApp = "orderbook"

// Net is a generated cluster: its file, parsed form and the nodes' keys
// (Keys[i] belongs to File.Nodes[i]).
type Net struct {
	File    cluster.File
	Cluster *cluster.Cluster
	Keys    []*bls.SecretKey
}

// New makes a cluster of n nodes listening on free loopback ports, with
// no replicas.
func New(n int) (*Net, error) {
	f := cluster.File{ChainID: eip712.DefaultChainID, App: DefaultApp, Aggregator: cluster.Aggregator{HTTP: "127.0.0.1:1"}}
	keys := make([]*bls.SecretKey, n)
	for i := 0; i < n; i++ {
		m, sk, err := NewMember(fmt.Sprintf("node%d", i+1))
		if err != nil {
			return nil, err
		}
		keys[i] = sk
		f.Nodes = append(f.Nodes, m)
	}
	c, err := cluster.New(f)
	if err != nil {
		return nil, err
	}
	return &Net{File: f, Cluster: c, Keys: keys}, nil
}

// NewMember makes one node entry with a fresh key and free ports.
func NewMember(id string) (cluster.Member, *bls.SecretKey, error) {
	sk, err := bls.GenerateKey()
	if err != nil {
		return cluster.Member{}, nil, err
	}
	httpPort, err := FreeTCPPort()
	if err != nil {
		return cluster.Member{}, nil, err
	}
	quicPort, err := FreeUDPPort()
	if err != nil {
		return cluster.Member{}, nil, err
	}
	return cluster.Member{
		ID:        id,
		HTTP:      net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)),
		QUIC:      net.JoinHostPort("127.0.0.1", strconv.Itoa(quicPort)),
		BLSPubkey: sk.PublicKey().Hex(),
		BLSPop:    sk.ProvePossession().Hex(),
	}, sk, nil
}

// WriteFiles writes cluster.json and one key file per node (node1.key …,
// the secret as 0x hex) into dir and returns the cluster file's path.
func (n *Net) WriteFiles(dir string) (string, error) {
	b, err := json.MarshalIndent(n.File, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "cluster.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return "", err
	}
	for i := range n.File.Nodes {
		if err := os.WriteFile(n.KeyPath(dir, i), []byte(n.Keys[i].Hex()+"\n"), 0o600); err != nil {
			return "", err
		}
	}
	return path, nil
}

// KeyPath is where WriteFiles puts node i's key.
func (n *Net) KeyPath(dir string, i int) string {
	return filepath.Join(dir, n.File.Nodes[i].ID+".key")
}

// FreeTCPPort asks the kernel for a free loopback TCP port. Another process
// may take it before the caller binds it; on loopback in a test that is
// rare enough to accept.
func FreeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeUDPPort is FreeTCPPort for UDP.
func FreeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

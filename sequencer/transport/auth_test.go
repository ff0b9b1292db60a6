package transport

import (
	"bytes"
	"strings"
	"testing"

	"github.com/seqbook/seqbook/sequencer/node/testnet"
)

func TestHelloBindsSessionRoleAndPeers(t *testing.T) {
	net, err := testnet.New(3)
	if err != nil {
		t.Fatal(err)
	}
	auths := make([]*authenticator, 3)
	for i := range auths {
		if auths[i], err = newAuthenticator(net.Cluster, i, net.Keys[i]); err != nil {
			t.Fatal(err)
		}
	}
	ekm := bytes.Repeat([]byte{7}, exporterBytes)
	otherEKM := bytes.Repeat([]byte{8}, exporterBytes)
	h := auths[0].makeHello(roleDialer, 1, ekm)

	if from, err := auths[1].checkHello(h, roleDialer, -1, ekm); err != nil || from != 0 {
		t.Fatalf("genuine hello: from=%d err=%v", from, err)
	}
	if from, err := auths[1].checkHello(h, roleDialer, 0, ekm); err != nil || from != 0 {
		t.Fatalf("genuine hello with expected sender: from=%d err=%v", from, err)
	}
	cases := []struct {
		name string
		by   int
		hel  []byte
		role byte
		want int
		ekm  []byte
		err  string
	}{
		{"replayed on another session", 1, h, roleDialer, -1, otherEKM, "does not verify"},
		{"reflected as the listener's answer", 1, h, roleListener, -1, ekm, "role"},
		{"shown to a node it was not for", 2, h, roleDialer, -1, ekm, "addressed to"},
		{"from someone else than the dialed peer", 1, h, roleDialer, 2, ekm, "expected"},
	}
	for _, c := range cases {
		if _, err := auths[c.by].checkHello(c.hel, c.role, c.want, c.ekm); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: err = %v, want one containing %q", c.name, err, c.err)
		}
	}

	// A hello whose sender field is swapped for another node: the
	// signature is node1's, the claim node3's.
	forged, err := decodeHello(h)
	if err != nil {
		t.Fatal(err)
	}
	forged.From = net.File.Nodes[2].ID
	if _, err := auths[1].checkHello(forged.encode(), roleDialer, -1, ekm); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("sender swap: %v", err)
	}
	// A hello claiming to be from the receiver itself.
	self := auths[1].makeHello(roleDialer, 1, ekm) // node2 "to" node2 is refused at "claims to be us"
	if _, err := auths[1].checkHello(self, roleDialer, -1, ekm); err == nil || !strings.Contains(err.Error(), "claims to be us") {
		t.Fatalf("self hello: %v", err)
	}
	// Every truncation is refused with an error, never a panic.
	for n := 0; n < len(h); n++ {
		if _, err := auths[1].checkHello(h[:n], roleDialer, -1, ekm); err == nil {
			t.Fatalf("truncated hello of %d bytes accepted", n)
		}
	}
}

func TestHelloEncodeDecodeRoundTrip(t *testing.T) {
	h := hello{Role: roleListener, From: "node1", To: "node4", Sig: bytes.Repeat([]byte{1}, 96)}
	got, err := decodeHello(h.encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.Role != h.Role || got.From != h.From || got.To != h.To || !bytes.Equal(got.Sig, h.Sig) {
		t.Fatalf("round trip: %+v", got)
	}
	if len(h.encode()) > helloBytesMax {
		t.Fatal("hello exceeds helloBytesMax")
	}
}

package sim

import (
	"encoding/binary"
	"errors"

	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// keyring is the simulator's cheap signature scheme: node i's signature
// on a digest is a keyed hash with i's secret, an aggregate is the XOR of
// its parts. It is not secure against a real attacker (anyone with the
// keyring could forge), but inside the simulator only the keyring checks
// signatures and every node, Byzantine ones included, signs only with its
// own secret, so verification is a real check: an aggregate verifies only
// if each named signer produced its part. It costs a few keccaks instead
// of a pairing, which is what lets the simulator run thousands of seeds.
//
// Like a compressed BLS point, a signature also has an encoding that can be
// wrong: the top three bits of its first byte must be 100 (encodingOK).
// Aggregate refuses one that is not, as herumi refuses bytes that are not
// a point, so a Byzantine vote of garbage bytes costs the leader here what
// it would cost with real BLS.
type keyring struct {
	secrets [][32]byte
}

func newKeyring(seed uint64, n int) *keyring {
	k := &keyring{secrets: make([][32]byte, n)}
	for i := range k.secrets {
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], seed)
		binary.BigEndian.PutUint64(b[8:], uint64(i))
		k.secrets[i] = eip712.Keccak256([]byte("seqbook/sim/key"), b[:])
	}
	return k
}

func (k *keyring) sign(node int, digest [32]byte) wire.Signature {
	var out wire.Signature
	for part := 0; part < 3; part++ {
		h := eip712.Keccak256(k.secrets[node][:], digest[:], []byte{byte(part)})
		copy(out[part*32:], h[:])
	}
	setEncoding(&out)
	return out
}

// encodingOK reports whether sig is well encoded (see keyring).
func encodingOK(sig wire.Signature) bool { return sig[0]&0xe0 == 0x80 }

func setEncoding(sig *wire.Signature) { sig[0] = sig[0]&0x1f | 0x80 }

// fakeCrypto is one node's view of the keyring: it signs with its own
// secret and verifies everyone's.
type fakeCrypto struct {
	k    *keyring
	self int
}

var _ core.Crypto = (*fakeCrypto)(nil)

func (c *fakeCrypto) Sign(digest [32]byte) wire.Signature { return c.k.sign(c.self, digest) }

func (c *fakeCrypto) Verify(node int, digest [32]byte, sig wire.Signature) bool {
	return node >= 0 && node < len(c.k.secrets) && c.k.sign(node, digest) == sig
}

func (c *fakeCrypto) Aggregate(sigs []wire.Signature) (wire.Signature, error) {
	if len(sigs) == 0 {
		return wire.Signature{}, errors.New("nothing to aggregate")
	}
	var out wire.Signature
	for _, s := range sigs {
		if !encodingOK(s) {
			return wire.Signature{}, errors.New("invalid signature encoding")
		}
		for i := range out {
			out[i] ^= s[i]
		}
	}
	setEncoding(&out)
	return out, nil
}

func (c *fakeCrypto) VerifyAggregate(signers wire.Bitmap, digest [32]byte, sig wire.Signature) bool {
	nodes := signers.Nodes()
	if len(nodes) == 0 || signers.Max() >= len(c.k.secrets) {
		return false
	}
	var want wire.Signature
	for _, n := range nodes {
		s := c.k.sign(n, digest)
		for i := range want {
			want[i] ^= s[i]
		}
	}
	setEncoding(&want)
	return want == sig
}

func (c *fakeCrypto) VerifyAggregates(checks []core.AggregateCheck) bool {
	for _, ch := range checks {
		if !c.VerifyAggregate(ch.Signers, ch.Digest, ch.Signature) {
			return false
		}
	}
	return len(checks) > 0
}

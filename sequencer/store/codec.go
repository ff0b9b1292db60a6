package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// Records are stored in a small binary form of their own: fixed-width
// big-endian integers, length-prefixed byte strings, a presence byte for
// optional fields and a format byte first, so a later layout can be told
// apart. Decoders refuse trailing bytes and every length past the bytes
// that are there: a corrupted file yields an error naming the record, not
// a panic or a silently wrong state.

const recordFormat byte = 1

type enc struct{ b []byte }

func (e *enc) u8(v uint8)   { e.b = append(e.b, v) }
func (e *enc) u16(v uint16) { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *enc) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *enc) raw(p []byte) { e.b = append(e.b, p...) }
func (e *enc) bytes(p []byte) {
	e.b = binary.BigEndian.AppendUint32(e.b, uint32(len(p)))
	e.b = append(e.b, p...)
}
func (e *enc) bool(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}
func (e *enc) proof(p *wire.Proof) {
	e.u8(uint8(p.Kind))
	e.u64(p.View)
	e.u64(p.Index)
	e.raw(p.ChainingHash[:])
	e.raw(p.Signature[:])
	e.bytes(p.Signers)
}
func (e *enc) optProof(p *wire.Proof) {
	e.bool(p != nil)
	if p != nil {
		e.proof(p)
	}
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b) < n {
		d.err = errors.New("truncated")
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}
func (d *dec) u8() uint8 {
	if p := d.take(1); p != nil {
		return p[0]
	}
	return 0
}
func (d *dec) u16() uint16 {
	if p := d.take(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}
func (d *dec) u64() uint64 {
	if p := d.take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}
func (d *dec) bytes(max int) []byte {
	p := d.take(4)
	if p == nil {
		return nil
	}
	n := binary.BigEndian.Uint32(p)
	if uint64(n) > uint64(max) {
		d.err = fmt.Errorf("length %d over %d", n, max)
		return nil
	}
	if out := d.take(int(n)); out != nil {
		return append([]byte{}, out...)
	}
	return nil
}
func (d *dec) hash() (h wire.Hash) {
	copy(h[:], d.take(32))
	return h
}
func (d *dec) bool() bool {
	switch v := d.u8(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		if d.err == nil {
			d.err = fmt.Errorf("presence byte %d", v)
		}
		return false
	}
}
func (d *dec) proof() *wire.Proof {
	p := &wire.Proof{Kind: wire.ProofKind(d.u8()), View: d.u64(), Index: d.u64(), ChainingHash: d.hash()}
	copy(p.Signature[:], d.take(wire.SignatureSize))
	p.Signers = d.bytes(wire.MaxBitmapBytes)
	if d.err == nil {
		if err := p.ValidateBasic(); err != nil {
			d.err = err
		}
	}
	return p
}
func (d *dec) optProof() *wire.Proof {
	if d.bool() {
		return d.proof()
	}
	return nil
}
func (d *dec) format(what string) {
	if v := d.u8(); d.err == nil && v != recordFormat {
		d.err = fmt.Errorf("%s: unknown record format %d", what, v)
	}
}
func (d *dec) finish(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("store: corrupt %s record: %w", what, d.err)
	}
	return nil
}

// encodeEntry stores an entry under its index key; the index is the key,
// so the value holds the rest.
func encodeEntry(e *core.Entry) []byte {
	w := &enc{b: make([]byte, 0, 1+32+32+8+2+8+4+len(e.Body))}
	w.u8(recordFormat)
	w.raw(e.Hash[:])
	w.raw(e.ChainingHash[:])
	w.u64(e.Timestamp)
	w.u16(e.Origin)
	w.u64(e.Seq)
	w.bytes(e.Body)
	return w.b
}

func decodeEntry(index uint64, b []byte) (core.Entry, error) {
	d := &dec{b: b}
	d.format("entry")
	e := core.Entry{Hash: d.hash(), ChainingHash: d.hash()}
	e.Index = index
	e.Timestamp = d.u64()
	e.Origin = d.u16()
	e.Seq = d.u64()
	e.Body = d.bytes(wire.MaxBatchBytes)
	return e, d.finish(fmt.Sprintf("entry %d", index))
}

func encodeProof(p *wire.Proof) []byte {
	w := &enc{}
	w.u8(recordFormat)
	w.proof(p)
	return w.b
}

func decodeProof(b []byte) (wire.Proof, error) {
	d := &dec{b: b}
	d.format("proof")
	p := d.proof()
	if err := d.finish("proof"); err != nil {
		return wire.Proof{}, err
	}
	return *p, nil
}

func encodeHard(h *core.HardState) []byte {
	w := &enc{}
	w.u8(recordFormat)
	w.u64(h.View)
	w.bool(h.Cert != nil)
	if h.Cert != nil {
		w.u64(h.Cert.View)
		w.raw(h.Cert.Signature[:])
		w.bytes(h.Cert.Signers)
	}
	return w.b
}

func decodeHard(b []byte) (core.HardState, error) {
	d := &dec{b: b}
	d.format("hard state")
	h := core.HardState{View: d.u64()}
	if d.bool() {
		c := &wire.Certificate{View: d.u64()}
		copy(c.Signature[:], d.take(wire.SignatureSize))
		c.Signers = d.bytes(wire.MaxBitmapBytes)
		if d.err == nil {
			if err := c.ValidateBasic(); err != nil {
				d.err = err
			}
		}
		h.Cert = c
	}
	return h, d.finish("hard state")
}

func (e *enc) signed(s core.Signed) {
	e.u64(s.View)
	e.u64(s.Index)
	e.raw(s.ChainingHash[:])
}

func (d *dec) signed() core.Signed {
	return core.Signed{View: d.u64(), Index: d.u64(), ChainingHash: d.hash()}
}

func encodeAppHard(h *core.AppHardState) []byte {
	w := &enc{}
	w.u8(recordFormat)
	w.bytes([]byte(h.App))
	w.signed(h.SignedLock)
	w.signed(h.SignedFinalize)
	w.optProof(h.Lock)
	w.optProof(h.Finalized)
	w.u16(uint16(len(h.OriginSeqs)))
	for _, s := range h.OriginSeqs {
		w.u64(s)
	}
	w.u64(h.NextSeq)
	return w.b
}

func decodeAppHard(b []byte) (core.AppHardState, error) {
	d := &dec{b: b}
	d.format("app hard state")
	h := core.AppHardState{App: string(d.bytes(wire.MaxAppBytes))}
	h.SignedLock = d.signed()
	h.SignedFinalize = d.signed()
	h.Lock = d.optProof()
	h.Finalized = d.optProof()
	n := int(d.u16())
	if n > wire.MaxNodes {
		if d.err == nil {
			d.err = fmt.Errorf("%d origin counters, limit %d", n, wire.MaxNodes)
		}
		n = 0
	}
	if n > 0 {
		h.OriginSeqs = make([]uint64, n)
		for i := range h.OriginSeqs {
			h.OriginSeqs[i] = d.u64()
		}
	}
	h.NextSeq = d.u64()
	return h, d.finish("app hard state")
}

func key64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func parseKey64(k []byte) (uint64, error) {
	if len(k) != 8 {
		return 0, fmt.Errorf("store: key of %d bytes, want 8", len(k))
	}
	return binary.BigEndian.Uint64(k), nil
}

// encodePending stores a pending batch under its seq key.
func encodePending(p *core.Pending) []byte {
	w := &enc{b: make([]byte, 0, 1+8+4+len(p.Body))}
	w.u8(recordFormat)
	w.u64(p.SubmittedMs)
	w.bytes(p.Body)
	return w.b
}

func decodePending(seq uint64, b []byte) (core.Pending, error) {
	d := &dec{b: b}
	d.format("pending")
	p := core.Pending{Seq: seq, SubmittedMs: d.u64()}
	p.Body = d.bytes(wire.MaxBatchBytes)
	return p, d.finish(fmt.Sprintf("pending %d", seq))
}

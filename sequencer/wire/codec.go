package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the first byte of every encoded message.
const Version byte = 1

// Encode returns the binary form of a message: Version, Type, then the
// fields in declaration order. It does not validate; encoding a message
// that fails ValidateBasic yields bytes Decode refuses.
func Encode(m Message) []byte {
	w := &writer{buf: make([]byte, 0, sizeHint(m))}
	w.u8(Version)
	w.u8(uint8(m.Type()))
	switch m := m.(type) {
	case *Post:
		w.str(m.App)
		w.u64(m.View)
		w.tip(m.Tip)
		w.u64(m.Finalized)
		w.u32(uint32(len(m.Batches)))
		for i := range m.Batches {
			w.u64(m.Batches[i].Seq)
			w.bytes(m.Batches[i].Body)
		}
	case *PostReply:
		w.str(m.App)
		w.u64(m.View)
		w.u64(m.After)
		w.batches(m.Batches)
		w.proofs(m.Proofs)
		w.bool(m.Mismatch)
	case *Round:
		w.str(m.App)
		w.u64(m.View)
		w.bool(m.Lock != nil)
		if m.Lock != nil {
			w.target(*m.Lock)
		}
		w.optProof(m.Finalize)
		w.optProof(m.Finalized)
		w.bool(m.ShareLock)
	case *Vote:
		w.str(m.App)
		w.u64(m.View)
		w.optSigned(m.Lock)
		w.optSigned(m.Finalize)
	case *Dispute:
		w.u64(m.View)
		w.u8(uint8(m.Reason))
		w.raw(m.Signature[:])
	case *ViewChange:
		w.cert(&m.Cert)
	case *ViewState:
		w.u64(m.View)
		w.bool(m.Cert != nil)
		if m.Cert != nil {
			w.cert(m.Cert)
		}
		w.u32(uint32(len(m.Apps)))
		for i := range m.Apps {
			a := &m.Apps[i]
			w.str(a.App)
			w.tip(a.Tip)
			w.optProof(a.Lock)
			w.optProof(a.Finalized)
		}
	case *NewView:
		w.str(m.App)
		w.u64(m.View)
		w.optProof(m.Lock)
		w.optProof(m.Finalized)
	case *SyncRequest:
		w.str(m.App)
		w.u64(m.View)
		w.u64(m.After)
		w.target(m.Target)
		w.tip(m.Have)
	case *SyncReply:
		w.str(m.App)
		w.u64(m.View)
		w.u64(m.After)
		w.batches(m.Batches)
		w.proofs(m.Proofs)
	default:
		panic(fmt.Sprintf("wire: Encode of unknown message %T", m))
	}
	return w.buf
}

// Decode parses and validates one message. Every error names what is
// wrong; the caller should drop the message (and may drop the peer).
func Decode(b []byte) (Message, error) {
	m, err := DecodeUnvalidated(b)
	if err != nil {
		return nil, err
	}
	if err := m.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("wire: %w", err)
	}
	return m, nil
}

// DecodeUnvalidated parses a message as Decode does but skips its
// ValidateBasic. A node never uses it: it exists for the simulator's
// mutation canaries, which deliver to a deliberately broken node what the
// edge would refuse when the broken rule is also checked there (rule 3's
// view check is, see ErrOtherViewLockProof).
func DecodeUnvalidated(b []byte) (Message, error) {
	if len(b) > MaxMessageBytes {
		return nil, fmt.Errorf("wire: message of %d bytes, limit %d", len(b), MaxMessageBytes)
	}
	r := &reader{buf: b}
	if v := r.u8(); r.err == nil && v != Version {
		return nil, fmt.Errorf("wire: unknown version %d", v)
	}
	t := Type(r.u8())
	var m Message
	switch t {
	case TypePost:
		p := &Post{App: r.str(), View: r.u64(), Tip: r.tip(), Finalized: r.u64()}
		n := r.count(8 + 4)
		if n > MaxBatchesPerMessage {
			r.fail(fmt.Errorf("%d batches, limit %d", n, MaxBatchesPerMessage))
		}
		for i := 0; i < n && r.err == nil; i++ {
			p.Batches = append(p.Batches, PostedBatch{Seq: r.u64(), Body: r.bytes(MaxBatchBytes)})
		}
		m = p
	case TypePostReply:
		p := &PostReply{App: r.str(), View: r.u64(), After: r.u64()}
		p.Batches = r.batches()
		p.Proofs = r.proofs()
		p.Mismatch = r.bool()
		m = p
	case TypeRound:
		p := &Round{App: r.str(), View: r.u64()}
		if r.bool() {
			t := r.target()
			p.Lock = &t
		}
		p.Finalize = r.optProof()
		p.Finalized = r.optProof()
		p.ShareLock = r.bool()
		m = p
	case TypeVote:
		m = &Vote{App: r.str(), View: r.u64(), Lock: r.optSigned(), Finalize: r.optSigned()}
	case TypeDispute:
		d := &Dispute{View: r.u64(), Reason: DisputeReason(r.u8())}
		r.rawInto(d.Signature[:])
		m = d
	case TypeViewChange:
		m = &ViewChange{Cert: r.cert()}
	case TypeViewState:
		p := &ViewState{View: r.u64()}
		if r.bool() {
			c := r.cert()
			p.Cert = &c
		}
		n := r.count(4 + 1 + 8 + 32 + 1 + 1)
		if n > MaxAppsPerMessage {
			r.fail(fmt.Errorf("%d apps, limit %d", n, MaxAppsPerMessage))
		}
		for i := 0; i < n && r.err == nil; i++ {
			p.Apps = append(p.Apps, AppState{App: r.str(), Tip: r.tip(), Lock: r.optProof(), Finalized: r.optProof()})
		}
		m = p
	case TypeNewView:
		m = &NewView{App: r.str(), View: r.u64(), Lock: r.optProof(), Finalized: r.optProof()}
	case TypeSyncRequest:
		m = &SyncRequest{App: r.str(), View: r.u64(), After: r.u64(), Target: r.target(), Have: r.tip()}
	case TypeSyncReply:
		p := &SyncReply{App: r.str(), View: r.u64(), After: r.u64()}
		p.Batches = r.batches()
		p.Proofs = r.proofs()
		m = p
	default:
		if r.err == nil {
			return nil, fmt.Errorf("wire: unknown message type %d", uint8(t))
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("wire: %s: %w", t, r.err)
	}
	if len(r.buf) != r.off {
		return nil, fmt.Errorf("wire: %s: %d trailing bytes", t, len(r.buf)-r.off)
	}
	return m, nil
}

// sizeHint estimates an encoding's size so Encode allocates once.
func sizeHint(m Message) int {
	n := 256
	add := func(bodies int) { n += bodies }
	switch m := m.(type) {
	case *Post:
		for i := range m.Batches {
			add(12 + len(m.Batches[i].Body))
		}
	case *PostReply:
		for i := range m.Batches {
			add(30 + len(m.Batches[i].Body))
		}
		add(len(m.Proofs) * 160)
	case *SyncReply:
		for i := range m.Batches {
			add(30 + len(m.Batches[i].Body))
		}
		add(len(m.Proofs) * 160)
	case *ViewState:
		add(len(m.Apps) * 400)
	}
	return n
}

type writer struct{ buf []byte }

func (w *writer) u8(v uint8)     { w.buf = append(w.buf, v) }
func (w *writer) u32(v uint32)   { w.buf = binary.BigEndian.AppendUint32(w.buf, v) }
func (w *writer) u64(v uint64)   { w.buf = binary.BigEndian.AppendUint64(w.buf, v) }
func (w *writer) raw(b []byte)   { w.buf = append(w.buf, b...) }
func (w *writer) bytes(b []byte) { w.u32(uint32(len(b))); w.raw(b) }
func (w *writer) str(s string)   { w.u32(uint32(len(s))); w.buf = append(w.buf, s...) }
func (w *writer) bool(v bool) {
	if v {
		w.u8(1)
	} else {
		w.u8(0)
	}
}
func (w *writer) tip(t Tip)           { w.u64(t.Index); w.raw(t.ChainingHash[:]) }
func (w *writer) target(t LockTarget) { w.u64(t.Index); w.raw(t.ChainingHash[:]) }
func (w *writer) batches(bs []Batch) {
	w.u32(uint32(len(bs)))
	for i := range bs {
		b := &bs[i]
		w.u64(b.Index)
		w.u64(b.Timestamp)
		w.buf = binary.BigEndian.AppendUint16(w.buf, b.Origin)
		w.u64(b.Seq)
		w.bytes(b.Body)
	}
}
func (w *writer) proof(p *Proof) {
	w.u8(uint8(p.Kind))
	w.u64(p.View)
	w.u64(p.Index)
	w.raw(p.ChainingHash[:])
	w.u8(uint8(len(p.Signers)))
	w.raw(p.Signers)
	w.raw(p.Signature[:])
}
func (w *writer) optProof(p *Proof) {
	w.bool(p != nil)
	if p != nil {
		w.proof(p)
	}
}
func (w *writer) proofs(ps []Proof) {
	w.u32(uint32(len(ps)))
	for i := range ps {
		w.proof(&ps[i])
	}
}
func (w *writer) optSigned(s *SignedTarget) {
	w.bool(s != nil)
	if s != nil {
		w.u64(s.Index)
		w.raw(s.ChainingHash[:])
		w.raw(s.Signature[:])
	}
}
func (w *writer) cert(c *Certificate) {
	w.u64(c.View)
	w.u8(uint8(len(c.Signers)))
	w.raw(c.Signers)
	w.raw(c.Signature[:])
}

// reader decodes with a sticky error: after the first failure every read
// returns zero values, and Decode reports the first error.
type reader struct {
	buf []byte
	off int
	err error
}

var errShort = errors.New("message truncated")

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.buf)-r.off < n {
		r.fail(errShort)
		return nil
	}
	b := r.buf[r.off : r.off+n]
	r.off += n
	return b
}

func (r *reader) u8() uint8 {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u16() uint16 {
	b := r.take(2)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func (r *reader) u32() uint32 {
	b := r.take(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (r *reader) u64() uint64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func (r *reader) bool() bool {
	switch v := r.u8(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		r.fail(fmt.Errorf("boolean byte %d", v))
		return false
	}
}

// count reads a list length and checks that the remaining bytes can hold
// that many elements of at least minSize bytes, so a forged count cannot
// make Decode allocate.
func (r *reader) count(minSize int) int {
	n := r.u32()
	if r.err != nil {
		return 0
	}
	if uint64(n)*uint64(minSize) > uint64(len(r.buf)-r.off) {
		r.fail(fmt.Errorf("list of %d elements does not fit in the message", n))
		return 0
	}
	return int(n)
}

func (r *reader) bytes(limit int) []byte {
	n := r.u32()
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(limit) {
		r.fail(fmt.Errorf("byte string of %d bytes, limit %d", n, limit))
		return nil
	}
	b := r.take(int(n))
	if b == nil {
		return nil
	}
	out := make([]byte, len(b))
	copy(out, b)
	return out
}

func (r *reader) str() string { return string(r.bytes(MaxAppBytes)) }

func (r *reader) rawInto(dst []byte) {
	if b := r.take(len(dst)); b != nil {
		copy(dst, b)
	}
}

func (r *reader) hash() (h Hash) {
	r.rawInto(h[:])
	return h
}

func (r *reader) tip() Tip           { return Tip{Index: r.u64(), ChainingHash: r.hash()} }
func (r *reader) target() LockTarget { return LockTarget{Index: r.u64(), ChainingHash: r.hash()} }
func (r *reader) signers() Bitmap {
	n := int(r.u8())
	if r.err == nil && n > MaxBitmapBytes {
		r.fail(fmt.Errorf("signer bitmap of %d bytes, limit %d", n, MaxBitmapBytes))
		return nil
	}
	b := r.take(n)
	if b == nil {
		return nil
	}
	return append(Bitmap(nil), b...)
}

func (r *reader) batches() []Batch {
	n := r.count(8 + 8 + 2 + 8 + 4)
	if n > MaxBatchesPerMessage {
		r.fail(fmt.Errorf("%d batches, limit %d", n, MaxBatchesPerMessage))
		return nil
	}
	var out []Batch
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, Batch{Index: r.u64(), Timestamp: r.u64(), Origin: r.u16(), Seq: r.u64(), Body: r.bytes(MaxBatchBytes)})
	}
	return out
}

func (r *reader) proof() Proof {
	p := Proof{Kind: ProofKind(r.u8()), View: r.u64(), Index: r.u64(), ChainingHash: r.hash(), Signers: r.signers()}
	r.rawInto(p.Signature[:])
	return p
}

func (r *reader) optProof() *Proof {
	if !r.bool() {
		return nil
	}
	p := r.proof()
	return &p
}

func (r *reader) proofs() []Proof {
	n := r.count(1 + 8 + 8 + 32 + 1 + SignatureSize)
	if n > MaxProofsPerMessage {
		r.fail(fmt.Errorf("%d proofs, limit %d", n, MaxProofsPerMessage))
		return nil
	}
	var out []Proof
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.proof())
	}
	return out
}

func (r *reader) optSigned() *SignedTarget {
	if !r.bool() {
		return nil
	}
	s := &SignedTarget{Index: r.u64(), ChainingHash: r.hash()}
	r.rawInto(s.Signature[:])
	return s
}

func (r *reader) cert() Certificate {
	c := Certificate{View: r.u64(), Signers: r.signers()}
	r.rawInto(c.Signature[:])
	return c
}

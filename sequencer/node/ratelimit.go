package node

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"
)

// SourceLimits bounds what one source (one client IP address; for IPv6,
// one /64 network, since anyone holding a /64 holds all its addresses) may
// PUT to /node/{app}/batches. The sequencer is open: anyone can submit, so
// without a per-source bound one client could fill the node's backlog
// (PendingBatchesMax, shared by all) and block everyone else. Past a bound
// the PUT gets 429 with a JSON error and a Retry-After header.
//
// Each bound is a token bucket: Rate per second, up to Burst at once.
type SourceLimits struct {
	// BatchesPerSecond and BatchesBurst bound the batches of one source.
	BatchesPerSecond float64
	BatchesBurst     int
	// BytesPerSecond and BytesBurst bound the batch bytes of one source.
	// BytesBurst must hold the largest batch (HTTPConfig.BodyBytesMax).
	BytesPerSecond float64
	BytesBurst     int64
	// SourcesMax bounds the sources tracked at once (about 100 bytes
	// each). When full, sources whose buckets have refilled are forgotten
	// (they carry no state); if none has, a new source gets 429 until one
	// does.
	SourcesMax int
}

// DefaultSourceLimits: far above what one replica sends (it batches its
// orders, tens of PUTs per second) and above `seqbook bench sequencer`'s
// 1000 batches/s from one address, yet a single client cannot take a
// node's whole backlog in one burst.
func DefaultSourceLimits() SourceLimits {
	return SourceLimits{
		BatchesPerSecond: 2000, BatchesBurst: 1000,
		BytesPerSecond: 64 << 20, BytesBurst: 32 << 20,
		SourcesMax: 10_000,
	}
}

// ValidateBasic checks the limits; bodyMax is the largest batch accepted.
func (l *SourceLimits) ValidateBasic(bodyMax int64) error {
	switch {
	case !(l.BatchesPerSecond > 0) || math.IsInf(l.BatchesPerSecond, 0) || l.BatchesBurst < 1:
		return fmt.Errorf("http: source limits: BatchesPerSecond must be positive and finite, BatchesBurst at least 1")
	case !(l.BytesPerSecond > 0) || math.IsInf(l.BytesPerSecond, 0) || l.BytesBurst < bodyMax:
		return fmt.Errorf("http: source limits: BytesPerSecond must be positive and finite, BytesBurst at least the largest batch (%d bytes)", bodyMax)
	case l.SourcesMax < 1:
		return fmt.Errorf("http: source limits: SourcesMax must be at least 1")
	}
	return nil
}

// sourceLimiter applies SourceLimits. Safe for concurrent use.
type sourceLimiter struct {
	lim SourceLimits
	mu  sync.Mutex
	src map[netip.Prefix]*buckets
}

// buckets are one source's token counts as of seen.
type buckets struct {
	batches, bytes float64
	seen           time.Time
}

func newSourceLimiter(lim SourceLimits) *sourceLimiter {
	return &sourceLimiter{lim: lim, src: map[netip.Prefix]*buckets{}}
}

// sourceOf names the source of a request from its remote address: the IP,
// or its /64 for IPv6.
func sourceOf(remoteAddr string) netip.Prefix {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{} // one shared source for the unparseable
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p
	}
	return netip.PrefixFrom(ip, 32)
}

// allow takes one batch of n bytes from source's buckets at time now. When
// it refuses, it says why and how long until the batch would fit.
func (s *sourceLimiter) allow(source netip.Prefix, n int64, now time.Time) (ok bool, wait time.Duration, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.src[source]
	if b == nil {
		if len(s.src) >= s.lim.SourcesMax {
			s.forgetRefilled(now)
		}
		if len(s.src) >= s.lim.SourcesMax {
			return false, time.Second, fmt.Sprintf("the node tracks %d sources already", s.lim.SourcesMax)
		}
		b = &buckets{batches: float64(s.lim.BatchesBurst), bytes: float64(s.lim.BytesBurst), seen: now}
		s.src[source] = b
	}
	s.refill(b, now)
	switch {
	case b.batches < 1:
		return false, secondsOf((1 - b.batches) / s.lim.BatchesPerSecond),
			fmt.Sprintf("more than %g batches per second (burst %d)", s.lim.BatchesPerSecond, s.lim.BatchesBurst)
	case b.bytes < float64(n):
		return false, secondsOf((float64(n) - b.bytes) / s.lim.BytesPerSecond),
			fmt.Sprintf("more than %g batch bytes per second (burst %d)", s.lim.BytesPerSecond, s.lim.BytesBurst)
	}
	b.batches--
	b.bytes -= float64(n)
	return true, 0, ""
}

func (s *sourceLimiter) refill(b *buckets, now time.Time) {
	if dt := now.Sub(b.seen).Seconds(); dt > 0 {
		b.batches = min(float64(s.lim.BatchesBurst), b.batches+dt*s.lim.BatchesPerSecond)
		b.bytes = min(float64(s.lim.BytesBurst), b.bytes+dt*s.lim.BytesPerSecond)
		b.seen = now
	}
}

// forgetRefilled drops the sources whose buckets are full again: tracking
// them changes nothing.
func (s *sourceLimiter) forgetRefilled(now time.Time) {
	for k, b := range s.src {
		s.refill(b, now)
		if b.batches >= float64(s.lim.BatchesBurst) && b.bytes >= float64(s.lim.BytesBurst) {
			delete(s.src, k)
		}
	}
}

func secondsOf(s float64) time.Duration {
	return time.Duration(math.Ceil(s*1000)) * time.Millisecond
}

package wan

import (
	"math/rand/v2"
	"os"
	"sync"
	"time"
)

// Switch joins the namespaces' TUN devices: every IPv4 packet read from
// one device is written to the device owning its destination address
// after Delay (plus up to Jitter), unless it is lost (Loss) or one end is
// cut off. A cut-off member's packets vanish without an answer, as when a
// host or its link dies silently (unlike a crashed process, whose host
// refuses connections).
type Switch struct {
	delay, jitter time.Duration
	loss          float64

	mu    sync.Mutex
	ports map[byte]*port
	cut   map[byte]bool
	rng   *rand.Rand
	// Dropped counts packets lost, cut off or with no port; Forwarded the
	// others (read under mu).
	dropped, forwarded uint64
	// delayed is the sum of the delays given to the forwarded packets:
	// with jitter, delivery in order per destination makes the mean
	// one-way delay longer than the delay set.
	delayed time.Duration
	wg      sync.WaitGroup
}

type port struct {
	tun *os.File
	out chan packet
	// lastDue keeps delivery in order per destination even with jitter.
	lastDue time.Time
}

type packet struct {
	due  time.Time
	data []byte
}

// portQueueMax bounds the packets waiting for one destination: a router
// queue. Past it packets are dropped, as a full router queue does.
const portQueueMax = 8192

// NewSwitch returns a switch with these link properties (one way, every
// link alike); seed drives jitter and loss.
func NewSwitch(delay, jitter time.Duration, loss float64, seed uint64) *Switch {
	return &Switch{delay: delay, jitter: jitter, loss: loss, ports: map[byte]*port{}, cut: map[byte]bool{},
		rng: rand.New(rand.NewPCG(seed, seed^0x5eb0)), forwarded: 0}
}

// Attach connects a namespace's device to the switch and starts moving
// its packets. The switch stops with the devices (Namespace.Close).
func (s *Switch) Attach(ns *Namespace) {
	p := &port{tun: ns.tun, out: make(chan packet, portQueueMax)}
	s.mu.Lock()
	s.ports[ns.Octet] = p
	s.mu.Unlock()
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.read(p) }()
	go func() { defer s.wg.Done(); s.deliver(p) }()
}

// SetCut cuts a member off (true) or heals it (false).
func (s *Switch) SetCut(ns *Namespace, cut bool) {
	s.mu.Lock()
	s.cut[ns.Octet] = cut
	s.mu.Unlock()
}

// Counts returns packets forwarded and dropped so far.
func (s *Switch) Counts() (forwarded, dropped uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.forwarded, s.dropped
}

// Delayed returns the packets forwarded so far and the sum of the delays
// they were given: between two calls, the mean one-way delay.
func (s *Switch) Delayed() (forwarded uint64, delayed time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.forwarded, s.delayed
}

// Wait returns once every port stopped (after the devices closed).
func (s *Switch) Wait() {
	s.mu.Lock()
	for _, p := range s.ports {
		close(p.out)
	}
	s.ports = map[byte]*port{}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Switch) read(p *port) {
	buf := make([]byte, 65536)
	for {
		n, err := p.tun.Read(buf)
		if err != nil {
			return
		}
		// IPv4 only (version nibble 4, at least a 20-byte header); the
		// kernel's IPv6 chatter has nowhere to go.
		if n < 20 || buf[0]>>4 != 4 {
			continue
		}
		src, dst := buf[15], buf[19]
		now := time.Now()
		s.mu.Lock()
		to, ok := s.ports[dst]
		if !ok || s.cut[src] || s.cut[dst] || (s.loss > 0 && s.rng.Float64() < s.loss) {
			s.dropped++
			s.mu.Unlock()
			continue
		}
		due := now.Add(s.delay)
		if s.jitter > 0 {
			due = due.Add(time.Duration(s.rng.Int64N(int64(2*s.jitter))) - s.jitter)
		}
		if due.Before(to.lastDue) {
			due = to.lastDue
		}
		to.lastDue = due
		pk := packet{due: due, data: append([]byte(nil), buf[:n]...)}
		select {
		case to.out <- pk:
			s.forwarded++
			s.delayed += due.Sub(now)
		default:
			s.dropped++
		}
		s.mu.Unlock()
	}
}

func (s *Switch) deliver(p *port) {
	for pk := range p.out {
		if d := time.Until(pk.due); d > 0 {
			time.Sleep(d)
		}
		if _, err := p.tun.Write(pk.data); err != nil {
			// The device is gone (closing): drain and stop.
			for range p.out {
			}
			return
		}
	}
}

package core

import "testing"

// TestPeerRTTTimeout: the retry timeout is the floor until a sample, then
// srtt + 4·rttvar within the bounds, following the samples both ways.
func TestPeerRTTTimeout(t *testing.T) {
	const lo, hi = 20, 100
	var p peerRTT
	if got := p.timeout(lo, hi); got != lo {
		t.Fatalf("before any sample: %d, want %d", got, lo)
	}
	p.sample(30) // srtt 30, rttvar 15
	if got := p.timeout(lo, hi); got != 90 {
		t.Fatalf("after a sample of 30: %d, want 30 + 4·15 = 90", got)
	}
	for range 40 {
		p.sample(30)
	}
	if got := p.timeout(lo, hi); got < 30 || got > 33 {
		t.Fatalf("steady samples of 30: %d, want about 30", got)
	}
	p.sample(300)
	if got := p.timeout(lo, hi); got != hi {
		t.Fatalf("after a sample of 300: %d, want the bound %d", got, hi)
	}
	for range 60 {
		p.sample(2)
	}
	if got := p.timeout(lo, hi); got != lo {
		t.Fatalf("a fast peer: %d, want the floor %d", got, lo)
	}
}

// TestRTTFloor: the floor is the smallest recent round trip, and a newer
// sample replaces it once it stood for floorWindow samples (a route that
// got longer is seen).
func TestRTTFloor(t *testing.T) {
	var p peerRTT
	p.sample(9)
	p.sample(5)
	p.sample(40) // a busy peer's answer does not raise the floor
	if p.floor != 5 {
		t.Fatalf("floor %d after 9, 5, 40; want 5", p.floor)
	}
	for range floorWindow {
		p.sample(12)
	}
	if p.floor != 12 {
		t.Fatalf("floor %d after %d samples of 12; want 12", p.floor, floorWindow)
	}
}

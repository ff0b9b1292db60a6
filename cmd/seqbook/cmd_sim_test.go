package main

import "testing"

// TestSimMutationExitCodes: a canary the simulator catches exits 0, the
// same strategies against the real protocol (--control) exit 0 with no
// failure, an unknown name and flags that need --mutation are refused.
func TestSimMutationExitCodes(t *testing.T) {
	if code := runSim([]string{"--mutation", "quorum-minus-one", "--seeds", "5", "--until-caught", "--real-bls-every", "0"}); code != 0 {
		t.Fatalf("quorum-minus-one: exit %d, want 0 (caught)", code)
	}
	if code := runSim([]string{"--mutation", "rule2", "--control", "--seeds", "2", "--real-bls-every", "0"}); code != 0 {
		t.Fatalf("rule2 control: exit %d, want 0", code)
	}
	if code := runSim([]string{"--mutation", "no-such-mutation", "--seeds", "1"}); code == 0 {
		t.Fatal("accepted an unknown mutation")
	}
	if code := runSim([]string{"--control", "--seeds", "1"}); code == 0 {
		t.Fatal("accepted --control without --mutation")
	}
	if code := runSim([]string{"--list-mutations"}); code != 0 {
		t.Fatalf("--list-mutations: exit %d", code)
	}
}

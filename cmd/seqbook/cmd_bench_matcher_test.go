package main

import "testing"

func TestBenchMatcherSmall(t *testing.T) {
	if code := benchMatcher([]string{"--orders", "2000", "--resting", "100", "--accounts", "50"}); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if code := benchMatcher([]string{"--orders", "0"}); code == 0 {
		t.Fatal("accepted --orders 0")
	}
}

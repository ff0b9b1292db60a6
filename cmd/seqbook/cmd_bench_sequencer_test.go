package main

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestBenchBodyRoundTrip(t *testing.T) {
	pad := strings.Repeat("x", 4096)
	for _, size := range []int{64, 1024, 4096} {
		for _, seq := range []int{0, 7, 123456} {
			b := benchBody("run1", seq, pad, size)
			if len(b) != size || !utf8.Valid(b) {
				t.Fatalf("size %d seq %d: %d bytes", size, seq, len(b))
			}
			got, ok := benchSeq(string(b), "run1")
			if !ok || got != seq {
				t.Fatalf("size %d seq %d: read back %d %v", size, seq, got, ok)
			}
			if _, ok := benchSeq(string(b), "run2"); ok {
				t.Fatal("matched another run's batch")
			}
		}
	}
	for _, body := range []string{"", "{}", `{"bench":x,"run":"run1"}`, `{"bench":-1,"run":"run1"}`, `{"bench":5}`} {
		if _, ok := benchSeq(body, "run1"); ok {
			t.Errorf("accepted %q", body)
		}
	}
}

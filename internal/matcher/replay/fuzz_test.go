package replay_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqbook/seqbook/internal/matcher"
	"github.com/seqbook/seqbook/internal/matcher/replay"
)

// FuzzReplayLine: the line decoder never panics, and an operation it
// accepts applies to an engine without breaking an invariant.
func FuzzReplayLine(f *testing.F) {
	for _, s := range []string{
		`{"op":"deposit","account":"a","token":"ETH","amount":"1.5"}`,
		`{"op":"withdraw","account":"a","token":"ETH","amount":1}`,
		`{"op":"order","id":"x","account":"a","market":"ETH/USDT","side":"buy","type":"limit","quantity":"1","price":2000}`,
		`{"op":"order","id":"y","account":"a","market":"ETH/USDT","side":"sell","type":"market","quantity":1e-6,"price":"1"}`,
		`{"op":"order","id":"z","account":"a","market":"ETH/USDT","side":"buy","type":"fok","quantity":"2","price":"3"}`,
		`{"op":"order","id":"w","account":"a","market":"ETH/USDT","side":"sell","type":"post_only","quantity":"2","price":"3"}`,
		`{"op":"order","id":"v","account":"a","market":"ETH/USDT","side":"sell","type":"ioc","quantity":"2","price":"3"}`,
		`{"op":"cancel","account":"a","id":"x"}`,
		`{"op":"cancel","id":7}`,
		`null`, `[]`, `{}`, `"op"`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		op, _, err := replay.DecodeLine([]byte(line))
		if err != nil {
			return
		}
		e := matcher.New(matcher.DefaultConfig())
		for _, tok := range []string{"ETH", "USDT"} {
			if err := e.Deposit("a", tok, 1_000_000_000_000); err != nil {
				t.Fatal(err)
			}
		}
		var res matcher.PlaceResult
		_ = replay.Apply(e, op, &res)
		if err := e.CheckInvariants(); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
	})
}

// FuzzReplayRun: whole inputs (several lines, any bytes) never crash the
// tool, every output line follows the contract, and the state stays
// consistent.
func FuzzReplayRun(f *testing.F) {
	// Seeds: the first lines of each golden input. Short seeds keep the
	// fuzzer fast (it minimizes every new input it finds interesting).
	ins, _ := filepath.Glob(filepath.Join(goldenDir, "*.in.jsonl"))
	for _, p := range ins {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		lines := bytes.SplitAfter(b, []byte("\n"))
		f.Add(bytes.Join(lines[:min(len(lines), 6)], nil))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		e, err := replay.Run(bytes.NewReader(in), &out, matcher.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		if err := e.CheckInvariants(); err != nil {
			t.Fatal(err)
		}
		checkOutput(t, out.Bytes())
		if n := strings.Count(out.String(), "\n"); n > 0 && !strings.HasSuffix(out.String(), "\n") {
			t.Fatal("output does not end with a newline")
		}
	})
}

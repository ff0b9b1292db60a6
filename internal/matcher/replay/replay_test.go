package replay_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqbook/seqbook/internal/matcher"
	"github.com/seqbook/seqbook/internal/matcher/replay"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/replay/*.out.jsonl from the current output")

const goldenDir = "../../../testdata/replay"

// TestGolden runs every testdata/replay/NAME.in.jsonl and compares the
// output with NAME.out.jsonl. After a deliberate change, run
//
//	go test ./internal/matcher/replay -run TestGolden -rewrite
//
// and review the diff of the .out.jsonl files like code.
func TestGolden(t *testing.T) {
	ins, err := filepath.Glob(filepath.Join(goldenDir, "*.in.jsonl"))
	if err != nil || len(ins) == 0 {
		t.Fatalf("no golden inputs in %s (%v)", goldenDir, err)
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in.jsonl")
		t.Run(name, func(t *testing.T) {
			input, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			e, err := replay.Run(bytes.NewReader(input), &out, matcher.DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			if err := e.CheckInvariants(); err != nil {
				t.Fatalf("invariant after replay: %v", err)
			}
			outPath := filepath.Join(goldenDir, name+".out.jsonl")
			if *rewrite {
				if err := os.WriteFile(outPath, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(outPath)
			if err != nil {
				t.Fatalf("%v (run with -rewrite to create it)", err)
			}
			if got := out.String(); got != string(want) {
				t.Errorf("output differs from %s (run with -rewrite after checking the change)\n--- got\n%s--- want\n%s", outPath, got, want)
			}
		})
	}
}

// TestKeyOrder pins the exact byte layout of each event kind.
func TestKeyOrder(t *testing.T) {
	in := `{"op":"deposit","account":"a","token":"ETH","amount":"2"}
{"op":"deposit","account":"b","token":"USDT","amount":"300"}
{"op":"order","id":"s","account":"a","market":"ETH/USDT","side":"sell","type":"limit","quantity":"1.5","price":"100"}
{"op":"order","id":"b","account":"b","market":"ETH/USDT","side":"buy","type":"limit","quantity":"1","price":"100.25"}
{"op":"cancel","account":"b","id":"s"}
{"op":"deposit","account":"a","token":"ETH","amount":"0"}
`
	want := `{"event":"trade","market":"ETH/USDT","maker_order":"s","taker_order":"b","price":"100","quantity":"1"}
{"event":"rejected","id":"s","reason":"not the order's owner"}
{"event":"rejected","id":"line 6","reason":"zero amount"}
{"event":"balance","account":"a","token":"ETH","available":"0.5","reserved":"0.5"}
{"event":"balance","account":"a","token":"USDT","available":"100","reserved":"0"}
{"event":"balance","account":"b","token":"ETH","available":"1","reserved":"0"}
{"event":"balance","account":"b","token":"USDT","available":"200","reserved":"0"}
`
	var out bytes.Buffer
	if _, err := replay.Run(strings.NewReader(in), &out, matcher.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	if out.String() != want {
		t.Fatalf("got\n%swant\n%s", out.String(), want)
	}
}

func TestDecodeLineAmounts(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want uint64
		err  string
	}{
		{`"1.5"`, 1_500_000, ""},
		{`1.5`, 1_500_000, ""},
		{`2000`, 2_000_000_000, ""},
		{`2e3`, 2_000_000_000, ""},
		{`0.1`, 100_000, ""}, // exact: no float
		{`"0.000001"`, 1, ""},
		{`0.0000001`, 0, "invalid amount: more than 6 decimals"},
		{`-1`, 0, "invalid amount: negative amount"},
		{`"abc"`, 0, "invalid amount: not a decimal number"},
		{`[1]`, 0, "invalid amount: must be a decimal string or a number"},
		{`null`, 0, `missing field "amount"`},
	} {
		op, _, err := replay.DecodeLine([]byte(`{"op":"deposit","account":"a","token":"T","amount":` + c.raw + `}`))
		if c.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), c.err) {
				t.Errorf("%s: error %v, want prefix %q", c.raw, err, c.err)
			}
			continue
		}
		if err != nil || op.Amount != c.want {
			t.Errorf("%s: %d, %v; want %d", c.raw, op.Amount, err, c.want)
		}
	}
}

func TestLongLine(t *testing.T) {
	in := `{"op":"deposit","account":"a","token":"T","amount":"1","pad":"` + strings.Repeat("x", replay.LineBytesMax) + "\"}\n" +
		`{"op":"deposit","account":"a","token":"T","amount":"2"}` // no final newline
	var out bytes.Buffer
	if _, err := replay.Run(strings.NewReader(in), &out, matcher.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	want := `{"event":"rejected","id":"line 1","reason":"line longer than 1048576 bytes"}
{"event":"balance","account":"a","token":"T","available":"2","reserved":"0"}
`
	if out.String() != want {
		t.Fatalf("got\n%s", out.String())
	}
}

// checkOutput asserts every output line is one JSON object of a known event
// kind with exactly the contract's keys.
func checkOutput(t *testing.T, out []byte) {
	t.Helper()
	keys := map[string]string{
		"trade":    "event,market,maker_order,taker_order,price,quantity",
		"rejected": "event,id,reason",
		"balance":  "event,account,token,available,reserved",
	}
	for _, line := range bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]string
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("output line not a flat JSON object of strings: %q: %v", line, err)
		}
		var order []string
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.Token() // {
		for dec.More() {
			k, _ := dec.Token()
			order = append(order, k.(string))
			dec.Token() // value
		}
		if want, ok := keys[m["event"]]; !ok || strings.Join(order, ",") != want {
			t.Fatalf("output line with unexpected keys: %q", line)
		}
	}
}

func TestGoldenOutputsAreWellFormed(t *testing.T) {
	outs, _ := filepath.Glob(filepath.Join(goldenDir, "*.out.jsonl"))
	for _, p := range outs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		checkOutput(t, b)
	}
}

package replica

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/obapi"
)

func TestOutcomeLogDebugLinesAndSummary(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t0 := time.Unix(1_700_000_000, 0)
	ol := newOutcomeLog(log, 30*time.Second, t0)
	trader := common.HexToAddress("0xc66F8Fba940064B5bA8d437d6fF829E60134230E")
	ol.batch(&Applied{Index: 7, Outcomes: []OpOutcome{
		{ID: [32]byte{1}, Kind: OpOrder, Trader: trader, Status: "open", Authentic: true},
		{ID: [32]byte{2}, Kind: OpOrder, Trader: trader, Status: obapi.StatusRejected, Reason: "nonce 5 of 0xabc already used", Authentic: true},
		{ID: [32]byte{3}, Kind: OpOrder, Trader: trader, Status: obapi.StatusRejected, Reason: "nonce 6 of 0xdef already used", Authentic: true},
		{ID: [32]byte{4}, Kind: OpCancel, Trader: trader, Status: obapi.StatusApplied, Authentic: true},
	}})
	ol.maybeSummary(t0.Add(10*time.Second), 7) // too early: no summary
	ol.maybeSummary(t0.Add(31*time.Second), 7)

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 5 {
		t.Fatalf("want 4 debug lines and 1 summary, got %d:\n%s", len(lines), buf.String())
	}
	first := lines[0]
	if first["level"] != "DEBUG" || first["order_id"] != hexID([32]byte{1}) || first["trader"] != trader.Hex() || first["index"] != float64(7) {
		t.Errorf("first outcome line: %v", first)
	}
	if _, ok := lines[3]["order_id"]; ok || lines[3]["id"] != hexID([32]byte{4}) {
		t.Errorf("a cancel's id is not an order id: %v", lines[3])
	}
	sum := lines[4]
	if sum["level"] != "INFO" || sum["index"] != float64(7) {
		t.Errorf("summary: %v", sum)
	}
	if got, want := sum["rejected"], "nonce N of N already used: 2"; got != want {
		t.Errorf("rejected = %v, want %q", got, want)
	}
	if got := sum["applied"]; !strings.Contains(got.(string), "cancel: 1") || !strings.Contains(got.(string), ": 1") {
		t.Errorf("applied = %v", got)
	}
	// Counting starts again after a summary.
	buf.Reset()
	ol.maybeSummary(t0.Add(62*time.Second), 7)
	if !strings.Contains(buf.String(), `"rejected":"none"`) {
		t.Errorf("second summary: %s", buf.String())
	}
}

func TestReasonClassIsBounded(t *testing.T) {
	ol := newOutcomeLog(slog.New(slog.DiscardHandler), time.Second, time.Time{})
	var outs []OpOutcome
	for i := 0; i < 3*reasonClassesMax; i++ {
		outs = append(outs, OpOutcome{Status: obapi.StatusRejected, Reason: "odd reason " + strings.Repeat("x", i)})
	}
	ol.batch(&Applied{Outcomes: outs})
	if len(ol.rejected) > reasonClassesMax+1 || ol.rejected["other"] == 0 {
		t.Fatalf("%d reason classes (other: %d)", len(ol.rejected), ol.rejected["other"])
	}
}

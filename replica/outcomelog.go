package replica

import (
	"context"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/seqbook/seqbook/client/obapi"
)

// outcomeLog turns applied operations into log lines: each outcome at
// debug level, and every interval a summary at info level (operations
// applied and rejected by reason since the last summary, the applied
// index). Owned by the apply loop: no locking.
type outcomeLog struct {
	log      *slog.Logger
	interval time.Duration
	last     time.Time
	// Since the last summary.
	applied  map[string]int // by kind: order, cancel, withdraw…
	rejected map[string]int // by reason class (see reasonClass)
}

// reasonClassesMax bounds the rejected map: reasons are free text, so a
// stream of odd rejections must not grow the summary without bound; the
// rest count under "other".
const reasonClassesMax = 32

func newOutcomeLog(log *slog.Logger, interval time.Duration, now time.Time) *outcomeLog {
	return &outcomeLog{log: log, interval: interval, last: now,
		applied: map[string]int{}, rejected: map[string]int{}}
}

// batch logs the outcomes of one applied batch and counts them.
func (ol *outcomeLog) batch(a *Applied) {
	debug := ol.log.Enabled(context.Background(), slog.LevelDebug)
	for _, o := range a.Outcomes {
		kind := o.Kind.String()
		if o.Status == obapi.StatusRejected {
			c := reasonClass(o.Reason)
			if _, ok := ol.rejected[c]; !ok && len(ol.rejected) >= reasonClassesMax {
				c = "other"
			}
			ol.rejected[c]++
		} else {
			ol.applied[kind]++
		}
		if debug {
			idKey := "id" // a cancel's, a withdrawal's or a deposit's own id
			if o.Kind.IsOrder() {
				idKey = "order_id"
			}
			ol.log.Debug("operation applied", "index", a.Index, "kind", kind, idKey, hexID(o.ID),
				"trader", o.Trader.Hex(), "status", o.Status, "reason", o.Reason, "authentic", o.Authentic)
		}
	}
}

// maybeSummary logs the summary when the interval has passed since the
// last one, and starts counting again.
func (ol *outcomeLog) maybeSummary(now time.Time, index uint64) {
	if ol.interval <= 0 || now.Sub(ol.last) < ol.interval {
		return
	}
	ol.log.Info("applied operations", "index", index, "since", now.Sub(ol.last).Round(time.Second).String(),
		"applied", countsText(ol.applied), "rejected", countsText(ol.rejected))
	ol.last = now
	clear(ol.applied)
	clear(ol.rejected)
}

// countsText writes counts as "a=1 b=2" in key order ("none" when empty),
// one stable attribute whatever the keys.
func countsText(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteString(": ")
		b.WriteString(strconv.Itoa(m[k]))
	}
	return b.String()
}

// reasonClass is a rejection reason without its particulars, so that
// "nonce 7 of 0xab… already used" and "nonce 9 of 0xcd… already used"
// count together: the text before the first colon when there is one, with
// every word holding a digit replaced by "N".
func reasonClass(reason string) string {
	if i := strings.IndexByte(reason, ':'); i > 0 {
		reason = reason[:i]
	}
	words := strings.Fields(reason)
	for i, w := range words {
		if strings.IndexFunc(w, unicode.IsDigit) >= 0 {
			words[i] = "N"
		}
	}
	if len(words) == 0 {
		return "unknown"
	}
	return strings.Join(words, " ")
}

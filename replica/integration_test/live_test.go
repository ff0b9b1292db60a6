package integration_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	dto "github.com/prometheus/client_model/go"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/client/obapi"
	"github.com/seqbook/seqbook/internal/localnet"
	"github.com/seqbook/seqbook/internal/testproc"
)

// TestLive runs one network of real processes for the live surfaces:
// Prometheus metrics on every component, the WebSocket feed and the web
// explorer (one network, because starting one is the costly part).
func TestLive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole network of processes")
	}
	n := testproc.StartNetwork(t, seqbookBin, 30, nil)
	t.Run("metrics", func(t *testing.T) { testMetrics(t, n) })
	t.Run("feed", func(t *testing.T) { testFeed(t, n) })
	t.Run("explorer", func(t *testing.T) { testExplorer(t, n) })
}

// testExplorer loads the web explorer in headless Chromium against the
// network, places an order pair, and checks that the trade appears
// without a reload and that the browser verifies the trader's balance
// proof (and refuses a tampered one). The screenshot is saved in the
// test's temporary folder, and at $SEQBOOK_EXPLORER_SCREENSHOT if set.
func testExplorer(t *testing.T, n *localnet.Network) {
	if os.Getenv("SEQBOOK_SKIP_BROWSER") == "1" {
		t.Skip("SEQBOOK_SKIP_BROWSER=1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	b := startBrowser(t, ctx)
	b.navigate(t, n.ReplicaURLs()[0]+"/?trader="+keys.TutorialUser1Address.Hex())
	wait := func(what string, expr, want string) {
		t.Helper()
		testproc.WaitFor(t, what, 60*time.Second, func() (bool, string) {
			got := b.evalString(t, expr)
			return got == want, fmt.Sprintf("%s = %q; console: %s", expr, got, b.consoleLog())
		})
	}
	wait("the page's live feed", `(document.getElementById("feed-state")||{}).textContent||""`, "live")
	wait("the trader's balances", `document.querySelectorAll("#balances tr").length > 0 ? "yes" : "no"`, "yes")
	// A marker on the window: a reload would drop it.
	b.eval(t, `window.notReloaded = true`)

	placePair(t, n, 1, 77)
	wait("the trade at 77, without a reload",
		`window.notReloaded && [...document.querySelectorAll("#trades td.price")].some(td => td.textContent === "77") ? "yes" : "no"`, "yes")

	wait("a finalized batch listed with its proof's signers",
		`[...document.querySelectorAll("#batches tr")].some(tr => tr.lastChild.textContent.split(" ").length >= 3) ? "yes" : "no"`, "yes")
	b.eval(t, `document.getElementById("verify-token").value = "USDT"; document.getElementById("verify").click(); true`)
	testproc.WaitFor(t, "the proof verified in the browser", 90*time.Second, func() (bool, string) {
		cls := b.evalString(t, `document.getElementById("verify-result").className`)
		text := b.evalString(t, `document.getElementById("verify-result").textContent`)
		if cls == "failed" && strings.Contains(text, "no proof") {
			// The aggregator may not have a quorum at the newest index yet.
			b.eval(t, `document.getElementById("verify").click(); true`)
		}
		return cls == "verified", text + "; console: " + b.consoleLog()
	})
	text := b.evalString(t, `document.getElementById("verify-result").textContent`)
	if !strings.HasPrefix(text, "verified: "+keys.TutorialUser1Address.Hex()) {
		t.Fatalf("verify result %q", text)
	}
	steps := b.evalString(t, `document.getElementById("verify-steps").textContent`)
	if !strings.Contains(steps, "EIP-712 digest recomputed here: 0x") || !strings.Contains(steps, "aggregate BLS12-381 signature verified") {
		t.Fatalf("verify steps %q", steps)
	}
	// Resting orders on both sides reach the page's book live too.
	ctx2 := context.Background()
	ob, _ := client.NewOrderbook(n.ReplicaURLs()[2], client.WithChainID(n.Cluster.ChainID))
	for _, o := range []struct {
		side  string
		price uint64
	}{{"sell", 91}, {"sell", 90}, {"buy", 64}, {"buy", 65}} {
		key := keys.TutorialUser1()
		if o.side == "sell" {
			key = keys.TutorialUser2()
		}
		if _, err := ob.PlaceOrder(ctx2, key, client.OrderParams{Market: "ETH/USDT", Side: o.side, Quantity: amount.Scale / 4, Price: o.price * amount.Scale}, true); err != nil {
			t.Fatal(err)
		}
	}
	wait("the resting orders in the page's book",
		`document.querySelectorAll("#asks tr").length + "/" + document.querySelectorAll("#bids tr").length`, "2/2")
	shot := filepath.Join(t.TempDir(), "explorer.png")
	b.screenshot(t, shot)
	t.Logf("explorer screenshot: %s", shot)
	if p := os.Getenv("SEQBOOK_EXPLORER_SCREENSHOT"); p != "" {
		b.screenshot(t, p)
	}

	// The same proof with its balance changed must not verify, and the
	// page must say why.
	b.eval(t, `document.getElementById("tamper").checked = true; document.getElementById("verify").click(); true`)
	testproc.WaitFor(t, "the tampered proof refused", 60*time.Second, func() (bool, string) {
		text := b.evalString(t, `document.getElementById("verify-result").textContent`)
		return strings.HasPrefix(text, "not verified: EIP-712 digest does not match"), text
	})
}

// placePair places a resting sell and a buy that takes it, through
// replica i.
func placePair(t *testing.T, n *localnet.Network, i int, price uint64) {
	t.Helper()
	ctx := context.Background()
	ob, _ := client.NewOrderbook(n.ReplicaURLs()[i], client.WithChainID(n.Cluster.ChainID))
	if _, err := ob.PlaceOrder(ctx, keys.TutorialUser2(), client.OrderParams{Market: "ETH/USDT", Side: "sell", Quantity: amount.Scale / 10, Price: price * amount.Scale}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := ob.PlaceOrder(ctx, keys.TutorialUser1(), client.OrderParams{Market: "ETH/USDT", Side: "buy", Quantity: amount.Scale / 10, Price: price * amount.Scale}, true); err != nil {
		t.Fatal(err)
	}
}

// testFeed follows GET /ws of real replicas: `seqbook watch` prints a
// trade made while it runs, and the SDK's finality channel carries the
// node quorum's signers.
func testFeed(t *testing.T, n *localnet.Network) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// seqbook watch, until it has printed a trade at price 123.
	cmd := exec.CommandContext(ctx, seqbookBin, "watch", "--market", "ETH/USDT", "--replica", n.ReplicaURLs()[1], "--plain", "--count", "1000")
	var out testproc.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	testproc.WaitFor(t, "seqbook watch shows the book", 30*time.Second, func() (bool, string) {
		return strings.Contains(out.String(), "ETH/USDT at index"), out.String()
	})

	ob, _ := client.NewOrderbook(n.ReplicaURLs()[2])
	type fin struct {
		index   uint64
		signers []string
	}
	fins := make(chan fin, 1000)
	go func() {
		_ = ob.Subscribe(ctx, []obapi.WSRequest{{Channel: obapi.ChannelFinality}}, func(e client.FeedEvent) error {
			f, err := e.Finality()
			if err == nil {
				fins <- fin{f.Index, f.Signers}
			}
			return err
		})
	}()
	var first fin // where the replica stands
	select {
	case first = <-fins:
	case <-ctx.Done():
		t.Fatal("no first finality message")
	}
	placePair(t, n, 0, 123)
	testproc.WaitFor(t, "seqbook watch prints the trade", 30*time.Second, func() (bool, string) {
		return strings.Contains(out.String(), "@ 123"), out.String()
	})
	for {
		select {
		case f := <-fins:
			if f.index <= first.index {
				t.Fatalf("finality went from %d to %d", first.index, f.index)
			}
			if len(f.signers) >= n.Cluster.NodeQuorum() {
				return // a batch applied with a proof of a node quorum
			}
			first = f
		case <-ctx.Done():
			t.Fatal("no finality message with the proof's signers")
		}
	}
}

// scrape reads a component's GET /metrics.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s/metrics: %d %s", url, resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s/metrics is not the Prometheus text format: %v", url, err)
	}
	return fams
}

// sample sums a family's counter, gauge or histogram count over the
// series whose labels include want.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	var sum float64
	for _, m := range f.Metric {
		match := true
		for k, v := range want {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum, true
}

func testMetrics(t *testing.T, n *localnet.Network) {
	c := n.Cluster
	node := n.NodeURLs()[0]
	rep := n.ReplicaURLs()[0]
	agg := n.AggregatorURL()
	names := map[string][]string{
		node: {"seqbook_node_view", "seqbook_node_leader", "seqbook_node_finalized_index", "seqbook_node_rounds_total",
			"seqbook_node_round_duration_seconds", "seqbook_node_batch_finality_seconds", "seqbook_node_bls_signs_total",
			"seqbook_node_bls_verifies_total", "seqbook_node_store_save_seconds", "seqbook_node_pending_batches",
			"seqbook_node_disputes_total", "seqbook_node_view_changes_total", "seqbook_node_peers_connected",
			"seqbook_node_batches_finalized_total", "seqbook_transport_sent_bytes_total", "go_goroutines"},
		rep: {"seqbook_replica_ops_accepted_total", "seqbook_replica_applied_index", "seqbook_replica_apply_lag_seconds",
			"seqbook_replica_fetched_index", "seqbook_replica_intake_pending", "seqbook_replica_batch_ops",
			"seqbook_replica_snapshot_seconds", "seqbook_replica_signed_reads_total", "seqbook_replica_batches_applied_total",
			"process_cpu_seconds_total"},
		agg: {"seqbook_aggregator_proofs_total", "seqbook_aggregator_proof_seconds", "process_cpu_seconds_total"},
	}
	// The counters that must move under the load below.
	type counter struct {
		url, name string
		labels    map[string]string
	}
	moving := []counter{
		{node, "seqbook_node_batches_finalized_total", nil},
		{node, "seqbook_node_batch_finality_seconds", nil},
		{node, "seqbook_node_store_save_seconds", nil},
		{node, "seqbook_node_bls_signs_total", nil},
		{node, "seqbook_node_finalized_index", map[string]string{"app": c.App}},
		{rep, "seqbook_replica_ops_accepted_total", map[string]string{"op": "order"}},
		{rep, "seqbook_replica_batches_applied_total", nil},
		{rep, "seqbook_replica_applied_index", nil},
		{rep, "seqbook_replica_signed_reads_total", map[string]string{"kind": "balance"}},
		{rep, "seqbook_replica_ops_rejected_total", map[string]string{"stage": "intake", "reason": "insufficient_balance"}},
		{agg, "seqbook_aggregator_proofs_total", map[string]string{"kind": "balance", "result": "ok"}},
		{agg, "seqbook_aggregator_proof_seconds", map[string]string{"kind": "balance"}},
	}
	before := map[string]map[string]*dto.MetricFamily{}
	for url := range names {
		before[url] = scrape(t, url)
	}

	// Load: orders that trade, one refused for its balance, and proofs.
	ctx := context.Background()
	ob, _ := client.NewOrderbook(rep, client.WithChainID(c.ChainID))
	agc, err := client.NewAggregator(agg, client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := ob.PlaceOrder(ctx, keys.TutorialUser2(), client.OrderParams{Market: "ETH/USDT", Side: "sell", Quantity: amount.Scale / 10, Price: 200 * amount.Scale}, true); err != nil {
			t.Fatal(err)
		}
		if _, err := ob.PlaceOrder(ctx, keys.TutorialUser1(), client.OrderParams{Market: "ETH/USDT", Side: "buy", Quantity: amount.Scale / 10, Price: 200 * amount.Scale}, true); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ob.PlaceOrder(ctx, keys.TutorialUser1(), client.OrderParams{Market: "ETH/USDT", Side: "buy", Quantity: 1_000_000 * amount.Scale, Price: 200 * amount.Scale}, false); err == nil {
		t.Fatal("an order far beyond the balance was accepted")
	}
	testproc.WaitFor(t, "a balance proof", 60*time.Second, func() (bool, string) {
		_, err := agc.BalanceProof(ctx, keys.TutorialUser1Address, "USDT")
		return err == nil, fmt.Sprint(err)
	})

	for url, want := range names {
		fams := scrape(t, url)
		var missing []string
		for _, name := range want {
			if _, ok := fams[name]; !ok {
				missing = append(missing, name)
			}
		}
		for name := range fams {
			if !strings.HasPrefix(name, "seqbook_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "promhttp_") {
				t.Errorf("%s exports %s, outside the seqbook_ namespace", url, name)
			}
		}
		if len(missing) > 0 {
			t.Errorf("%s/metrics lacks %v", url, missing)
		}
	}
	// Counters are scraped until they moved: the node may finalize the
	// last batch a moment after the replica answered.
	for _, m := range moving {
		was, _ := sample(before[m.url], m.name, m.labels)
		testproc.WaitFor(t, m.name+" moves under load", 30*time.Second, func() (bool, string) {
			now, ok := sample(scrape(t, m.url), m.name, m.labels)
			return ok && now > was, fmt.Sprintf("%s%v: %v then %v (exported: %v)", m.name, m.labels, was, now, ok)
		})
	}
}

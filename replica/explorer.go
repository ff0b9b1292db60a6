package replica

import (
	"embed"
	"io/fs"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/seqbook/seqbook/internal/matcher"
)

// The web explorer (docs/explorer.md): static files embedded in the
// binary, served at / and /explorer/. They need no build step; the one
// bundle, static/noble.js, is built by scripts/explorer-bundle/build.sh
// and committed.
//
//go:embed explorer/static
var explorerFiles embed.FS

// ExplorerConfig is GET /explorer/config: what the page needs to follow
// this replica and to verify proofs without trusting it for more than the
// cluster file it runs with.
type ExplorerConfig struct {
	App     string `json:"app"`
	ChainID uint64 `json:"chain_id"`
	Replica string `json:"replica"`
	// Aggregator is the aggregator's base URL from the cluster file (empty
	// when the replica runs without one).
	Aggregator string            `json:"aggregator"`
	Replicas   []ExplorerReplica `json:"replicas"`
	Threshold  int               `json:"threshold"`
	Markets    []string          `json:"markets"`
	Tokens     []string          `json:"tokens"`
}

// ExplorerReplica is a replica's id and BLS public key (cluster file).
type ExplorerReplica struct {
	ID        string `json:"id"`
	BLSPubkey string `json:"bls_pubkey"`
}

// explorerMarketsMax bounds the markets and tokens the config lists.
const explorerMarketsMax = 100

func (r *Replica) explorerRoutes(g *gin.Engine) {
	static, err := fs.Sub(explorerFiles, "explorer/static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(static)
	g.GET("/", func(c *gin.Context) {
		c.Request.URL.Path = "/"
		files.ServeHTTP(c.Writer, c.Request)
	})
	g.GET("/explorer/*file", func(c *gin.Context) {
		name := c.Param("file")
		if name == "/config" {
			c.JSON(http.StatusOK, r.explorerConfig())
			return
		}
		if _, err := fs.Stat(static, strings.TrimPrefix(name, "/")); err != nil || name == "/" {
			fail(c, http.StatusNotFound, "no explorer file %s", clip(name))
			return
		}
		c.Request.URL.Path = name
		files.ServeHTTP(c.Writer, c.Request)
	})
}

func (r *Replica) explorerConfig() ExplorerConfig {
	out := ExplorerConfig{App: r.cfg.Domain.App, ChainID: r.cfg.Domain.EIP712.ChainID, Replica: r.cfg.ID,
		Replicas: []ExplorerReplica{}, Markets: []string{}, Tokens: []string{}}
	if c := r.cfg.Cluster; c != nil {
		if c.Aggregator.HTTP != "" {
			out.Aggregator = "http://" + c.Aggregator.HTTP
		}
		for _, rep := range c.Replicas {
			out.Replicas = append(out.Replicas, ExplorerReplica{ID: rep.ID, BLSPubkey: rep.BLSPubkey})
		}
		out.Threshold = c.ReplicaThreshold()
	}
	markets, tokens := map[string]bool{}, map[string]bool{}
	r.mu.RLock()
	for _, o := range r.ledger.eng.OpenOrders() {
		markets[o.Market] = true
	}
	for i := len(r.ledger.trades) - 1; i >= 0 && len(markets) < explorerMarketsMax; i-- {
		markets[r.ledger.trades[i].Market] = true
	}
	for _, b := range r.ledger.eng.Balances() {
		tokens[b.Token] = true
	}
	r.mu.RUnlock()
	if len(markets) == 0 {
		markets["ETH/USDT"] = true
	}
	for m := range markets {
		if base, quote, err := matcher.SplitMarket(m); err == nil {
			tokens[base], tokens[quote] = true, true
		}
		out.Markets = append(out.Markets, m)
	}
	for t := range tokens {
		out.Tokens = append(out.Tokens, t)
	}
	slices.Sort(out.Markets)
	slices.Sort(out.Tokens)
	out.Markets = out.Markets[:min(len(out.Markets), explorerMarketsMax)]
	out.Tokens = out.Tokens[:min(len(out.Tokens), explorerMarketsMax)]
	return out
}

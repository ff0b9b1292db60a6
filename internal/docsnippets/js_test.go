// Package docsnippets runs the JavaScript examples of docs/*.md, as
// written, against a local network: a reader copies them into a file and
// runs them with node, and so does this test.
package docsnippets

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/internal/mdblocks"
	"github.com/seqbook/seqbook/internal/testproc"
)

var seqbookBin string

func TestMain(m *testing.M) { os.Exit(testproc.Main(m, "seqbook-docsnippets-", &seqbookBin)) }

// repoRoot is where the docs and testdata are, from this package's folder.
const repoRoot = "../.."

// jsBlock is one ```js block of a page.
type jsBlock struct {
	page string
	mdblocks.Block
}

// jsBlocks returns every ```js block of the Markdown pages under docs/.
func jsBlocks(t *testing.T) []jsBlock {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []jsBlock
	for _, p := range pages {
		md, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range mdblocks.Find(string(md), "js", "javascript") {
			out = append(out, jsBlock{page: filepath.Base(p), Block: b})
		}
	}
	return out
}

// TestJavaScriptExamplesRun runs every JavaScript example of the docs with
// node, from a folder inside testdata/docsnippets (so the pinned packages
// resolve), with the environment the docs describe: REPLICA and
// PRIVATE_KEY (the tutorial's first account, funded by the localnet
// genesis), and cluster.json and proof.json in the working folder. An
// example passes when node exits 0: each one throws on a refused order or
// a proof that does not verify.
func TestJavaScriptExamplesRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a local network")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	pkgDir, err := filepath.Abs(filepath.Join(repoRoot, "testdata", "docsnippets"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(pkgDir, "node_modules", "ethers")); err != nil {
		t.Skip("the examples' packages are not installed: cd testdata/docsnippets && npm ci (.ci/run does)")
	}
	blocks := jsBlocks(t)
	if len(blocks) < 3 {
		t.Fatalf("found %d JavaScript examples in docs/, want the ethers, viem and noble ones", len(blocks))
	}

	n := testproc.StartNetwork(t, seqbookBin, 30, nil)
	work, err := os.MkdirTemp(pkgDir, "run-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	cl, err := os.ReadFile(n.ClusterPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "cluster.json"), cl, 0o644); err != nil {
		t.Fatal(err)
	}
	// proof.json as the docs make it: seqbook balance --aggregator.
	user1 := keys.TutorialUser1Address.Hex()
	proof, err := exec.Command(seqbookBin, "balance", "--aggregator", n.AggregatorURL(), "--address", user1, "--token", "USDT").Output()
	if err != nil {
		t.Fatalf("seqbook balance --aggregator: %v", err)
	}
	if err := os.WriteFile(filepath.Join(work, "proof.json"), proof, 0o644); err != nil {
		t.Fatal(err)
	}

	for i, b := range blocks {
		t.Run(b.page+":"+strconv.Itoa(b.Line), func(t *testing.T) {
			file := filepath.Join(work, "example"+strconv.Itoa(i)+".mjs")
			if err := os.WriteFile(file, []byte(b.Code), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(node, file)
			cmd.Dir = work
			cmd.Env = append(os.Environ(), "REPLICA="+n.ReplicaURLs()[0], "PRIVATE_KEY="+keys.TutorialUser1Hex)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s (line %d) fails as written: %v\n%s", b.page, b.Line, err, out)
			}
			t.Logf("%s line %d: %s", b.page, b.Line, strings.TrimSpace(string(out)))
		})
	}
}
